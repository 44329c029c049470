"""Presets of the event-log component: a log whose layout the product already knows, named in one line of
YAML instead of a mapping.

``preset: ncm`` reads the NetEase Cloud Music impression log, or the synthetic twin that
``churn-dagster generate`` writes in the same format: ``source.paths`` names the folder holding
``impression_data.csv`` (or ``.csv.gz``) and ``user_demographics.csv``. Each impression row is one event,
typed by the deepest response it carries (like, share, comment, a visit to the creator's page, viewing the
comments, click), else ``impression``; the card is the item, the view time the value; times are epoch
milliseconds, days are Beijing days. The users table gives province, age and gender; its
``registeredMonthCnt``, ``followCnt`` and ``level`` are read at the log's end, so they would leak what happened
during the label period and are left out. The windows default to the built-in study's calendar. The
NCM-specific features (creator and card statistics, detail lists) stay in the built-in graph
(``churn-dagster materialize``); the preset gives the generic features of docs/EVENT_LOGS.md on the same
log, so the two can be compared.
"""

from __future__ import annotations

from pathlib import Path

from churn_dagster.domain.calendar import FIRST_DAY, LABEL_DAYS, LAST_DAY, OBSERVATION_DAYS

PRESETS = ("ncm",)
NCM_FLAGS = {"like": "isLike", "share": "isShare", "comment": "isComment", "profile": "isIntoPersonalHomepage",
             "view_comments": "isViewComment", "click": "isClick"}
NCM_MAPPING = {"user_id": "userId", "event_time": "impressTime", "time_format": "epoch_ms",
               "timezone": "Asia/Shanghai", "item_id": "mlogId", "value": "mlogViewTime", "flags": NCM_FLAGS,
               "unflagged_type": "impression", "null_values": ["NA"]}
NCM_WINDOWS = {"start": FIRST_DAY.isoformat(), "end": LAST_DAY.isoformat(), "observation_days": OBSERVATION_DAYS,
               "label_days": LABEL_DAYS, "grain": "day"}
NCM_USERS = {"user_id": "userId", "attributes": ["province", "age", "gender"]}


def ncm_file(folder: Path, stem: str) -> Path:
    """``<stem>.csv`` or ``<stem>.csv.gz`` in ``folder`` (a missing one is reported by the source check)."""
    plain, packed = folder / f"{stem}.csv", folder / f"{stem}.csv.gz"
    return packed if packed.exists() and not plain.exists() else plain


def preset_fields(preset: str, folder: Path) -> dict:
    """The YAML fields the preset fills in (``source``, ``mapping``, ``windows``, ``users``), as plain data
    for the component's models; ``folder``: where the published files are."""
    if preset != "ncm":
        raise ValueError(f"unknown preset {preset!r}")
    return {"source": {"paths": [str(ncm_file(folder, "impression_data"))]}, "mapping": NCM_MAPPING,
            "windows": NCM_WINDOWS,
            "users": {"source": {"paths": [str(ncm_file(folder, "user_demographics"))]}, **NCM_USERS}}
