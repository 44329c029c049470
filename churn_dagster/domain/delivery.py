"""The delivery contract of a landing folder: how a platform export arrives day by day.

Each day arrives as ``day=YYYY-MM-DD/`` holding that day's rows of the three daily files (impressions, card
stats, creator stats) in the published format, and an empty ``_SUCCESS`` marker written last, so a reader
never sees a half-delivered day. The three snapshot tables (user, card and creator demographics) sit at the
top of the folder. The landing sensor reads folders by this contract; ``churn-dagster land`` writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from churn_dagster.domain import ncm_format as fmt

READY_MARKER = "_SUCCESS"
DAILY_FILES = (fmt.IMPRESSIONS, fmt.MLOG_STATS, fmt.CREATOR_STATS)
SNAPSHOT_FILES = (fmt.USER_DEMOGRAPHICS, fmt.MLOG_DEMOGRAPHICS, fmt.CREATOR_DEMOGRAPHICS)


def day_folder(landing: Path, day: date) -> Path:
    return landing / f"day={day.isoformat()}"


@dataclass(frozen=True)
class Deliveries:
    """What a landing folder holds: the days whose delivery is complete (``_SUCCESS`` written), oldest
    first, and the names of ``day=`` folders that do not name a calendar day (``day=2019-11-31``), which
    are skipped so that they never hold back the other days."""

    days: list[date]
    malformed: list[str]


def landed_days(landing: Path) -> Deliveries:
    days, malformed = [], []
    if landing.is_dir():
        for folder in sorted(landing.iterdir()):
            if not folder.is_dir() or not folder.name.startswith("day=") or not (folder / READY_MARKER).exists():
                continue
            try:
                days.append(date.fromisoformat(folder.name.removeprefix("day=")))
            except ValueError:
                malformed.append(folder.name)
    return Deliveries(sorted(days), malformed)
