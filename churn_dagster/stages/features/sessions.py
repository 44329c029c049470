"""Sessions of each cohort user's observation window (the 30-minute gap rule)."""

import dagster as dg

from churn_dagster.core import checks
from churn_dagster.core.metadata import (
    add_partition_metadata,
    check,
    query_table,
    schema_metadata,
)
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.stages.features.common import feature_asset, leakage_spec
from churn_dagster.stages.features.sql import sessions as session_sql
from churn_dagster.storage.duck import literal_paths, parquet_rows


def session_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """``sessions``."""

    @dg.asset(
        description="Sessions of each cohort user's observation window (30-minute gap rule) with 24+ features: "
        "indices, day number, duration, gap, local hour and weekday, totals, rates. Duration runs from the first "
        "feed request to the end of the last card viewed (request time + view time).",
        deps=["cohort_users", "window_impressions"],
        check_specs=[
            leakage_spec("sessions"),
            dg.AssetCheckSpec("impressions_accounted", asset="sessions", blocking=True,
                              description="Session impressions add up to the cohort's window_impressions."),
            dg.AssetCheckSpec("gap_rule", asset="sessions", blocking=True, description="Consecutive sessions are at least the gap apart."),
        ],
        **feature_asset(p),
    )
    def sessions(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        cohorts = [parse_day(k) for k in context.partition_keys]
        with lake.connect() as con:
            session_sql.build_sessions(con, lake.lake, p.calendar, cohorts, features.session_gap_minutes)
            out = checks.lake_paths(lake.lake, "sessions", cohorts)
            users = checks.lake_paths(lake.lake, "cohort_users", cohorts)
            in_sessions, short_gaps = con.execute(
                "SELECT coalesce(sum(total_impressions), 0), coalesce(count_if(gap_min >= 0 AND gap_min < $gap), 0) "
                "FROM read_parquet($f, hive_partitioning = false)",
                {"f": literal_paths(out), "gap": features.session_gap_minutes},
            ).fetchone()
            in_window = parquet_rows(con, checks.lake_paths(lake.lake, "window_impressions", cohorts))
            meta = {**schema_metadata(con, out), **features.metadata(p.calendar)}

            def shape(key, path):
                f = {"f": literal_paths([path])}
                return {
                    "reads_days": p.days_read(p.calendar.observation_dts(parse_day(key))),
                    "sessions_per_user": query_table(
                        con, "SELECT min(n) AS min, median(n) AS median, avg(n) AS mean, quantile_disc(n, 0.99) AS p99, "
                        "max(n) AS max FROM (SELECT count(*) AS n FROM read_parquet($f, hive_partitioning = false) "
                        "GROUP BY user_id)", f),
                    "session_shape": query_table(
                        con, "SELECT median(total_impressions) AS median_impressions, median(duration_min) AS "
                        "median_minutes, max(daily_session_idx) AS max_sessions_in_a_day "
                        "FROM read_parquet($f, hive_partitioning = false)", f),
                }

            add_partition_metadata(context, con, dict(zip(context.partition_keys, out, strict=True)), shape)  # a row per session
            results = [
                checks.nothing_from_label_period(con, p.calendar, out, users, "last_request_ms"),
                check("impressions_accounted", in_sessions == in_window, f"{in_sessions} in sessions, {in_window} in windows"),
                check("gap_rule", short_gaps == 0, f"{short_gaps} sessions start less than the gap after the previous one"),
            ]
        return dg.MaterializeResult(metadata=meta, check_results=results)

    return [sessions]
