"""The delivery contract of a landing folder: how a platform export arrives day by day.

Each day arrives as ``day=YYYY-MM-DD/`` holding that day's rows of the three daily files (impressions, card
stats, creator stats) in the published format, and an empty ``_SUCCESS`` marker written last, so a reader
never sees a half-delivered day. The three snapshot tables (user, card and creator demographics) sit at the
top of the folder. The landing sensor reads folders by this contract; ``churn-dagster land`` writes them.

A day may be delivered again with corrected content: its marker is removed, its files rewritten and the
marker written again. What identifies a delivery is therefore not the day's name but its files: the name,
size and modification time of each (the marker included, so touching ``_SUCCESS`` re-delivers a day whose
files were rewritten with their old sizes and times). Reading every byte to hash it would cost a full read
of each day's files on every sensor tick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from churn_dagster.domain import ncm_format as fmt

READY_MARKER = "_SUCCESS"
DAILY_FILES = (fmt.IMPRESSIONS, fmt.MLOG_STATS, fmt.CREATOR_STATS)
SNAPSHOT_FILES = (fmt.USER_DEMOGRAPHICS, fmt.MLOG_DEMOGRAPHICS, fmt.CREATOR_DEMOGRAPHICS)


def day_folder(landing: Path, day: date) -> Path:
    return landing / f"day={day.isoformat()}"


# One delivery of a day: (file name, size in bytes, modification time in ns) of each of its files, by name.
Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Deliveries:
    """What a landing folder holds: the days whose delivery is complete (``_SUCCESS`` written), oldest
    first, with the fingerprint of each (``fingerprints``), and the names of ``day=`` folders that do not name
    a calendar day (``day=2019-11-31``), which are skipped so that they never hold back the other days."""

    days: list[date]
    malformed: list[str]
    fingerprints: dict[date, Fingerprint] = field(default_factory=dict)


def fingerprint(folder: Path) -> Fingerprint:
    """The delivery a day folder holds now; files being written under a hidden temporary name do not count."""
    found = []
    for path in sorted(folder.iterdir()):
        try:
            if path.is_file() and not path.name.startswith("."):
                stat = path.stat()
                found.append((path.name, stat.st_size, stat.st_mtime_ns))
        except FileNotFoundError:  # removed while we looked: a re-delivery under way, seen on the next tick
            continue
    return tuple(found)


def changed_files(before: Fingerprint, now: Fingerprint) -> list[str]:
    """Names of the files that are new, gone, or of another size or modification time, sorted."""
    old, new = {f[0]: f for f in before}, {f[0]: f for f in now}
    return sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))


def landed_days(landing: Path) -> Deliveries:
    days, malformed, prints = [], [], {}
    if landing.is_dir():
        for folder in sorted(landing.iterdir()):
            if not folder.is_dir() or not folder.name.startswith("day=") or not (folder / READY_MARKER).exists():
                continue
            try:
                day = date.fromisoformat(folder.name.removeprefix("day="))
            except ValueError:
                malformed.append(folder.name)
                continue
            days.append(day)
            prints[day] = fingerprint(folder)
    return Deliveries(sorted(days), malformed, prints)
