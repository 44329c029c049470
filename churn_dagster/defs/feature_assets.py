"""Observation-window features: sessions, the static vector and the KPI aggregates."""


import dagster as dg

from churn_dagster.calendar import parse_day
from churn_dagster.defs import checks
from churn_dagster.defs.metadata import check, parquet_metadata, per_partition_table, query_markdown
from churn_dagster.defs.partitions import CALENDAR, cohort_partitions, observation_days
from churn_dagster.defs.raw_assets import OWNERS
from churn_dagster.defs.resources import FeatureSettingsResource, LakeResource
from churn_dagster.transforms import features as feature_sql
from churn_dagster.transforms import sessions as session_sql
from churn_dagster.transforms.duck import literal_paths

_COMMON = dict(
    group_name="features",
    kinds={"duckdb", "parquet"},
    owners=OWNERS,
    code_version="2",
    partitions_def=cohort_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
)


def _leakage_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        "no_label_period_rows", asset=asset, description="No input impression at or after the label period's start."
    )


@dg.asset(
    description="Sessions of each cohort user's observation window (30-minute gap rule) with 24+ features: "
    "indices, day number, duration, gap, local hour and weekday, totals, rates. Duration runs from the first "
    "feed request to the end of the last card viewed (request time + view time).",
    deps=["cohort_users", dg.AssetDep("raw_impressions", partition_mapping=observation_days)],
    check_specs=[
        _leakage_spec("sessions"),
        dg.AssetCheckSpec("impressions_accounted", asset="sessions",
                          description="Session impressions add up to the users' observation-window impressions."),
        dg.AssetCheckSpec("gap_rule", asset="sessions", description="Consecutive sessions are at least the gap apart."),
    ],
    **_COMMON,
)
def sessions(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
    cohorts = [parse_day(k) for k in context.partition_keys]
    with lake.connect() as con:
        counts = session_sql.build_sessions(con, lake.lake, CALENDAR, cohorts, features.session_gap_minutes)
        out = checks.lake_paths(lake.lake, "sessions", cohorts)
        users = checks.lake_paths(lake.lake, "cohort_users", cohorts)
        f = {"f": literal_paths(out)}
        in_sessions, short_gaps = con.execute(
            "SELECT sum(total_impressions), count_if(gap_min >= 0 AND gap_min < $gap) "
            "FROM read_parquet($f, hive_partitioning = false)",
            {**f, "gap": features.session_gap_minutes},
        ).fetchone()
        dts = sorted({d for c in cohorts for d in CALENDAR.observation_dts(c)})
        in_window = con.execute(
            """SELECT count(*) FROM read_parquet($i, hive_partitioning = false) i
               JOIN read_parquet($u, hive_partitioning = false) u
                 ON i.user_id = u.user_id AND i.dt BETWEEN u.first_dt AND u.observation_end_dt""",
            {"i": literal_paths(lake.lake.raw_day("impression_data", CALENDAR.day(d)) for d in dts), "u": literal_paths(users)},
        ).fetchone()[0]
        meta = parquet_metadata(con, out)
        meta.update(features.metadata())
        meta["sessions_per_cohort"] = per_partition_table(counts, "sessions")
        meta["sessions_per_user"] = dg.MetadataValue.md(query_markdown(
            con,
            "SELECT min(n) AS min, median(n) AS median, avg(n) AS mean, quantile_disc(n, 0.99) AS p99, max(n) AS max "
            "FROM (SELECT count(*) AS n FROM read_parquet($f, hive_partitioning = false) GROUP BY user_id)", f,
        ))
        meta["session_shape"] = dg.MetadataValue.md(query_markdown(
            con,
            "SELECT median(total_impressions) AS median_impressions, median(duration_min) AS median_minutes, "
            "max(daily_session_idx) AS max_sessions_in_a_day FROM read_parquet($f, hive_partitioning = false)", f,
        ))
        results = [
            checks.nothing_from_label_period(con, CALENDAR, out, users, "last_request_ms"),
            check("impressions_accounted", in_sessions == in_window, f"{in_sessions} in sessions, {in_window} in windows"),
            check("gap_rule", short_gaps == 0, f"{short_gaps} sessions start less than the gap after the previous one"),
        ]
    return dg.MaterializeResult(metadata=meta, check_results=results)


def _feature_result(con, lake, cohorts, table: str, counts: dict, last_ms_column: str,
                    settings: FeatureSettingsResource) -> dg.MaterializeResult:
    out = checks.lake_paths(lake, table, cohorts)
    users = checks.lake_paths(lake, "cohort_users", cohorts)
    numeric = [c for c in checks.numeric_columns(con, out) if c != last_ms_column]
    meta = parquet_metadata(con, out)
    meta.update(settings.metadata())
    meta["users_per_cohort"] = per_partition_table(counts, "users")
    summary = " UNION ALL ".join(
        f"SELECT '{c}' AS feature, avg({c}) AS mean, stddev_pop({c}) AS std, min({c}) AS min, max({c}) AS max, "
        f"count_if({c} IS NULL) AS nulls FROM read_parquet($f, hive_partitioning = false)"
        for c in numeric
    )
    meta["feature_summary"] = dg.MetadataValue.md(query_markdown(con, summary, {"f": literal_paths(out)}))
    results = [
        checks.one_row_per_cohort_user(con, out, users),
        checks.nothing_from_label_period(con, CALENDAR, out, users, last_ms_column),
        checks.all_finite(con, "finite_values", out, numeric),
    ]
    return dg.MaterializeResult(metadata=meta, check_results=results)


def _feature_checks(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec("one_row_per_cohort_user", asset=asset),
        _leakage_spec(asset),
        dg.AssetCheckSpec("finite_values", asset=asset, description="No NaN or infinite value."),
    ]


@dg.asset(
    description="The static vector of the hybrid LSTM (17 numbers): gender one-hot, age, age missing, registered "
    "months (>80 treated as missing), active days, sessions, sessions per active day, per-session averages and "
    "CTR; the follow count only when use_follow_count is on (it is measured after the label period). Raw "
    "values; imputation and scaling are fit on training users.",
    deps=["cohort_users", "sessions", "raw_user_demographics",
          dg.AssetDep("user_day_activity", partition_mapping=observation_days)],
    check_specs=_feature_checks("static_features"),
    **_COMMON,
)
def static_features(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
    cohorts = [parse_day(k) for k in context.partition_keys]
    with lake.connect() as con:
        counts = feature_sql.build_static_features(con, lake.lake, CALENDAR, cohorts, features.use_follow_count)
        return _feature_result(con, lake.lake, cohorts, "static_features", counts, "last_impression_ms", features)


@dg.asset(
    description="KPI aggregates for the classical models: totals and rates, per-active-day averages, recency, "
    "first-half vs second-half trend of the observation window, positions and swipe-down lists, content type, "
    "card age and creator preferences, demographics (no follow count unless use_follow_count is on); with "
    "use_content_stats (default on), the popularity (day impressions, popular share, CTR), freshness and creator "
    "publishing activity of the cards shown and clicked, from mlog_stats and creator_stats of observation days "
    "up to each impression's day.",
    deps=["cohort_users", "raw_user_demographics", "raw_mlog_demographics", "raw_creator_demographics",
          dg.AssetDep("raw_impressions", partition_mapping=observation_days),
          dg.AssetDep("user_day_activity", partition_mapping=observation_days),
          dg.AssetDep("raw_mlog_stats", partition_mapping=observation_days),
          dg.AssetDep("raw_creator_stats", partition_mapping=observation_days)],
    check_specs=_feature_checks("kpi_features"),
    **{**_COMMON, "code_version": "3"},  # 3: the content-stats columns
)
def kpi_features(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
    cohorts = [parse_day(k) for k in context.partition_keys]
    with lake.connect() as con:
        counts = feature_sql.build_kpi_features(con, lake.lake, CALENDAR, cohorts, features.publish_day_anchor,
                                                features.use_follow_count, features.use_content_stats)
        return _feature_result(con, lake.lake, cohorts, "kpi_features", counts, "last_impression_ms", features)
