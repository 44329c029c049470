"""When each column of the three demographic snapshots was measured, and which of them may reach a feature.

``user_demographics``, ``mlog_demographics`` and ``creator_demographics`` are one snapshot each, taken on
1 Dec 2019, after the last day of the log and so after every label period. A column is safe as a feature only
when its value on that day is the value it had before the label period: a fixed attribute (gender, a card's
type), or a date written as an offset from the snapshot day (registration months, a card's publication day),
which moves every user of a cohort by the same amount and carries nothing of their behaviour. A column that
counts or grades what happened up to the snapshot (follows, followers, levels, a creator's account type) has
absorbed the label period: on the real log it leaks the label.

Every snapshot column is listed here, once, with its class and the reason. The leaky ones reach a feature
only when ``CHURN_USE_LEAKY_COLUMNS`` is on (for measuring the leak, never for a model in use), and the feature
assets then carry a warning; ``assets_tests/test_snapshot_columns.py`` perturbs each column in turn and fails
when a column that is not listed here, or a leaky one with the setting off, changes any feature of any task
family.
"""

from __future__ import annotations

from dataclasses import dataclass

from churn_dagster.domain import ncm_format as fmt


@dataclass(frozen=True)
class SnapshotColumn:
    file: str  # the file's stem
    column: str  # the canonical (Parquet) name
    leaky: bool  # measured after the log and changing with behaviour: a feature only behind the leakage setting
    why: str


SNAPSHOT_FILES = (fmt.USER_DEMOGRAPHICS, fmt.MLOG_DEMOGRAPHICS, fmt.CREATOR_DEMOGRAPHICS)

_KEY = "an identifier: joins, never a value"
_FIXED = "a fixed attribute, the same before the label period"
SNAPSHOT_COLUMNS = (
    SnapshotColumn("user_demographics", "user_id", False, _KEY),
    SnapshotColumn("user_demographics", "province", False, _FIXED),
    SnapshotColumn("user_demographics", "age", False, "changes only on a birthday, not with behaviour"),
    SnapshotColumn("user_demographics", "gender", False, _FIXED),
    SnapshotColumn("user_demographics", "registered_month_cnt", False,
                   "a registration date counted back from the snapshot: the same offset for every user"),
    SnapshotColumn("user_demographics", "follow_cnt", True, "counts follows made up to 1 Dec, label period included"),
    SnapshotColumn("user_demographics", "level", True, "an activity level graded up to 1 Dec"),
    SnapshotColumn("mlog_demographics", "mlog_id", False, _KEY),
    SnapshotColumn("mlog_demographics", "song_id", False, _FIXED),
    SnapshotColumn("mlog_demographics", "artist_id", False, _FIXED),
    SnapshotColumn("mlog_demographics", "creator_id", False, _KEY),
    SnapshotColumn("mlog_demographics", "publish_time", False,
                   "a publication date counted back from the snapshot: the same offset for every card"),
    SnapshotColumn("mlog_demographics", "type", False, _FIXED),
    SnapshotColumn("mlog_demographics", "content_id", False, _FIXED),
    SnapshotColumn("mlog_demographics", "talk_id", False, _FIXED),
    SnapshotColumn("creator_demographics", "creator_id", False, _KEY),
    SnapshotColumn("creator_demographics", "gender", False, _FIXED),
    SnapshotColumn("creator_demographics", "registered_month_cnt", False,
                   "a registration date counted back from the snapshot: the same offset for every creator"),
    SnapshotColumn("creator_demographics", "follows", True, "counts the creator's follows made up to 1 Dec"),
    SnapshotColumn("creator_demographics", "followeds", True,
                   "counts the creator's followers up to 1 Dec, gained while users were in their label period"),
    SnapshotColumn("creator_demographics", "creator_type", True,
                   "an account status (anonymised codes) that a creator can be granted during the label period"),
    SnapshotColumn("creator_demographics", "level", True, "a creator level graded up to 1 Dec"),
)

LEAKY_COLUMNS = tuple(c for c in SNAPSHOT_COLUMNS if c.leaky)
# The features the leaky columns feed when the leakage setting is on (and only then).
LEAKY_FEATURES = {
    "follow_count": ("user_demographics", "follow_cnt"),
    "mean_log_creator_followers": ("creator_demographics", "followeds"),
    "special_creator_share": ("creator_demographics", "creator_type"),
}


def column(file: str, name: str) -> SnapshotColumn:
    """The listing of ``file``'s column ``name``; KeyError for a column nobody has classified."""
    for listed in SNAPSHOT_COLUMNS:
        if (listed.file, listed.column) == (file, name):
            return listed
    raise KeyError(f"{file}.{name} is not classified in churn_dagster/domain/snapshots.py")


def leakage_warning() -> str:
    """The warning a feature asset built with the leaky columns carries in its metadata."""
    listed = ", ".join(f"{feature} ({file}.{name})" for feature, (file, name) in LEAKY_FEATURES.items())
    return (f"CHURN_USE_LEAKY_COLUMNS is on: {listed} are measured on 1 Dec 2019, after every label period, and "
            "leak it; for measuring the leak only")
