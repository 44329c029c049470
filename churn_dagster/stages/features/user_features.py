"""Per-user feature vectors of the observation window: the static vector and the KPI aggregates."""

import dagster as dg

from churn_dagster.core import checks
from churn_dagster.core.metadata import (
    add_partition_metadata,
    schema_metadata,
    table,
)
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.stages.features.common import feature_asset, leakage_spec
from churn_dagster.stages.features.sql import features as feature_sql
from churn_dagster.storage.duck import literal_paths

SUMMARY_HEADER = ("feature", "mean", "std", "min", "max", "nulls")


def feature_summaries(con, paths, numeric: list[str], keys: list[str]) -> dict[str, dg.TableMetadataValue]:
    """Each cohort's summary of every numeric feature (mean, std, min, max, NULLs), for each partition key
    (its cohort day), from one grouped scan of all the run's files: a query per partition and feature made a
    backfill of 185 sparse cohorts spend 11 s on its metadata. A cohort without users has NULL statistics."""
    aggregates = ", ".join(f"avg({c}), stddev_pop({c}), min({c})::DOUBLE, max({c})::DOUBLE, count_if({c} IS NULL)"
                           for c in numeric)
    found = {str(row[0]): row[1:] for row in con.execute(
        f"SELECT cohort_day, {aggregates} FROM read_parquet($f, hive_partitioning = false) GROUP BY cohort_day",
        {"f": literal_paths(paths)}).fetchall()}
    empty = (None, None, None, None, 0) * len(numeric)
    return {key: table(SUMMARY_HEADER, [(c, *found.get(key, empty)[5 * i: 5 * i + 5]) for i, c in enumerate(numeric)])
            for key in keys}


def _feature_result(p: Partitions, context, con, lake, cohorts, table_name: str, last_ms_column: str,
                    settings: FeatureSettingsResource) -> dg.MaterializeResult:
    out = checks.lake_paths(lake, table_name, cohorts)
    users = checks.lake_paths(lake, "cohort_users", cohorts)
    numeric = [c for c in checks.numeric_columns(con, out) if c != last_ms_column]
    meta = {**schema_metadata(con, out), **settings.metadata(p.calendar)}
    summaries = feature_summaries(con, out, numeric, context.partition_keys)
    add_partition_metadata(  # a row per cohort user
        context, con, dict(zip(context.partition_keys, out, strict=True)),
        lambda key, path: {"feature_summary": summaries[key],
                           "reads_days": p.days_read(p.calendar.observation_dts(parse_day(key)))})
    results = [
        checks.one_row_per_cohort_user(con, out, users),
        checks.nothing_from_label_period(con, p.calendar, out, users, last_ms_column),
        checks.all_finite(con, "finite_values", out, numeric),
    ]
    return dg.MaterializeResult(metadata=meta, check_results=results)


def _feature_checks(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec("one_row_per_cohort_user", asset=asset, blocking=True),
        leakage_spec(asset),
        dg.AssetCheckSpec("finite_values", asset=asset, blocking=True, description="No NaN or infinite value."),
    ]


def user_feature_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """``static_features`` and ``kpi_features``."""

    @dg.asset(
        description="The static vector of the hybrid LSTM (17 numbers): gender one-hot, age, age missing, registered "
        "months (>80 treated as missing), active days, sessions, sessions per active day, per-session averages and "
        "CTR; the follow count only when use_leaky_columns is on (it is measured after the label period). Raw "
        "values; imputation and scaling are fit on training users.",
        deps=["cohort_users", "sessions", "raw_user_demographics",
              dg.AssetDep("user_day_activity", partition_mapping=p.observation_days)],
        check_specs=_feature_checks("static_features"),
        **feature_asset(p),
    )
    def static_features(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        cohorts = [parse_day(k) for k in context.partition_keys]
        with lake.connect() as con:
            feature_sql.build_static_features(con, lake.lake, p.calendar, cohorts, features.use_leaky_columns)
            return _feature_result(p, context, con, lake.lake, cohorts, "static_features", "last_impression_ms", features)


    @dg.asset(
        description="KPI aggregates for the classical models: totals and rates, per-active-day averages, recency, "
        "first-half vs second-half trend of the observation window, positions and swipe-down lists, content type, "
        "card age and creator preferences, demographics (the follow count, creator followers and creator account types "
        "only when use_leaky_columns is on: measured after the label period); with use_content_stats (default on), the "
        "popularity (day impressions, popular share, CTR), freshness and creator "
        "publishing activity of the cards shown and clicked, from mlog_stats and creator_stats of observation days "
        "up to each impression's day.",
        deps=["cohort_users", "raw_user_demographics", "raw_mlog_demographics", "raw_creator_demographics",
              "window_impressions",
              dg.AssetDep("user_day_activity", partition_mapping=p.observation_days),
              dg.AssetDep("raw_mlog_stats", partition_mapping=p.observation_days),
              dg.AssetDep("raw_creator_stats", partition_mapping=p.observation_days)],
        check_specs=_feature_checks("kpi_features"),
        **{**feature_asset(p), "code_version": "4"},  # 4: no swipe entry of the label period; leaky columns behind the setting
    )
    def kpi_features(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        cohorts = [parse_day(k) for k in context.partition_keys]
        with lake.connect() as con:
            feature_sql.build_kpi_features(con, lake.lake, p.calendar, cohorts, features.publish_day_anchor,
                                           features.use_leaky_columns, features.use_content_stats)
            return _feature_result(p, context, con, lake.lake, cohorts, "kpi_features", "last_impression_ms", features)

    return [static_features, kpi_features]
