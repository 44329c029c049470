"""Daily activity: one row per user and active day, condensed from the day's raw impressions.

Cohort membership and the label-period targets read this small table instead of the impression log.
"""

import dagster as dg

from churn_dagster.core import checks
from churn_dagster.core.asset_attributes import daily_asset
from churn_dagster.core.metadata import add_partition_metadata, check, schema_metadata
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.stages.cohorts.sql import cohorts as cohort_sql
from churn_dagster.storage.duck import literal_paths


def activity_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """``user_day_activity``."""

    @dg.asset(
        description="One row per user and active day: impressions, clicks, actions, view time, feed requests. "
        "First appearances and label-period activity read this instead of the impression log.",
        **daily_asset(p, "activity", code_version="1"),
        deps=["raw_impressions"],
        check_specs=[
            dg.AssetCheckSpec("impressions_accounted", asset="user_day_activity", blocking=True,
                              description="Summed impressions equal the raw impression rows of the same days."),
            dg.AssetCheckSpec("one_row_per_user_day", asset="user_day_activity", blocking=True),
        ],
    )
    def user_day_activity(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        days = [parse_day(k) for k in context.partition_keys]
        with lake.connect() as con:
            for d in days:
                cohort_sql.build_user_day_activity(con, lake.lake, d)
            out = [lake.lake.daily("user_day_activity", d) for d in days]
            raw = literal_paths(lake.lake.raw_day("impression_data", d) for d in days)
            summed = con.execute(
                "SELECT coalesce(sum(impressions), 0) FROM read_parquet($f, hive_partitioning = false)",
                {"f": literal_paths(out)},
            ).fetchone()[0]
            raw_rows = con.execute("SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata($f)", {"f": raw}).fetchone()[0]
            meta = schema_metadata(con, out)
            add_partition_metadata(context, con, dict(zip(context.partition_keys, out, strict=True)))  # a row per active user
            results = [
                check("impressions_accounted", summed == raw_rows, f"{summed} summed vs {raw_rows} raw rows"),
                checks.unique_rows(con, "one_row_per_user_day", out, "(user_id, dt)"),
            ]
        return dg.MaterializeResult(metadata=meta, check_results=results)

    return [user_day_activity]
