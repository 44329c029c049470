"""What every observation-window feature asset shares: its Dagster attributes and the leakage check spec."""

import dagster as dg

from churn_dagster.defs.automation.conditions import cohort_ready
from churn_dagster.defs.constants import OWNERS
from churn_dagster.defs.partitions import cohort_partitions

FEATURE_ASSET = dict(
    group_name="features",
    kinds={"duckdb", "parquet"},
    owners=OWNERS,
    code_version="2",
    partitions_def=cohort_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    automation_condition=cohort_ready,
)


def leakage_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "no_label_period_rows", asset=asset, blocking=True, description="No input impression at or after the label period's start."
    )


