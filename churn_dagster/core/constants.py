"""Names every stage of the wiring shares: the owning team, the two prediction targets, and run tags."""

OWNERS = ["team:churn-data"]

# Binary churn, and the 5-level engagement class of the label period.
TARGETS = ("binary", "level")

# Dagster's documented run tags of a single-run backfill over a partition range (``dagster asset materialize
# --partition-range`` sets the same): a run carrying them materializes every partition from start to end.
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"

# What started a run (``landing``, ``daily_schedule``, ``cli``), shown as a tag on the run.
TRIGGER_TAG = "churn/trigger"


def partition_range_tags(first: str, last: str) -> dict[str, str]:
    """The run tags that make one run materialize the partitions ``first`` .. ``last``."""
    return {PARTITION_RANGE_START_TAG: first, PARTITION_RANGE_END_TAG: last}
