"""What every observation-window feature asset shares: its Dagster attributes and the leakage check spec."""

import dagster as dg

from churn_dagster.core.asset_attributes import cohort_asset
from churn_dagster.core.partitions import Partitions


def feature_asset(p: Partitions) -> dict:
    return cohort_asset(p, "features", code_version="2")


def leakage_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "no_label_period_rows", asset=asset, blocking=True, description="No input impression at or after the label period's start."
    )


