"""The impressions of each cohort's observation window, extracted once for the window's readers."""

import dagster as dg

from churn_dagster.core import checks
from churn_dagster.core.metadata import add_partition_metadata, check, schema_metadata
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.stages.features.common import feature_asset, leakage_spec
from churn_dagster.stages.features.sql import window as window_sql


def window_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """``window_impressions``."""

    @dg.asset(
        description="Every impression of each cohort user's observation window (their first day to its end), with "
        "every stored column of raw_impressions (source_line included, for lineage), sorted by user and time: the "
        "rows that sessions, KPI features, continuation requests and the trend inputs read, taken from the raw days "
        "once instead of by each of them. Values are copied as loaded.",
        deps=["cohort_users", dg.AssetDep("raw_impressions", partition_mapping=p.observation_days),
              dg.AssetDep("user_day_activity", partition_mapping=p.observation_days)],
        check_specs=[
            leakage_spec("window_impressions"),
            dg.AssetCheckSpec("impressions_accounted", asset="window_impressions", blocking=True,
                              description="Each cohort's rows equal its users' window impressions as user_day_activity "
                              "counts them from the raw days."),
        ],
        **{**feature_asset(p), "code_version": "1"},
    )
    def window_impressions(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        cohorts = [parse_day(k) for k in context.partition_keys]
        with lake.connect() as con:
            written = window_sql.build_window_impressions(con, lake.lake, p.calendar, cohorts)
            expected = window_sql.expected_rows(con, lake.lake, p.calendar, cohorts)
            out = checks.lake_paths(lake.lake, window_sql.TABLE, cohorts)
            users = checks.lake_paths(lake.lake, "cohort_users", cohorts)
            meta = {**schema_metadata(con, out), **features.metadata(p.calendar)}
            add_partition_metadata(context, con, dict(zip(context.partition_keys, out, strict=True)),
                                   lambda key, _path: {"reads_days": p.days_read(p.calendar.observation_dts(parse_day(key)))})
            wrong = {c.isoformat(): (written[c], expected[c]) for c in cohorts if written[c] != expected[c]}
            results = [
                checks.nothing_from_label_period(con, p.calendar, out, users, "impress_time_ms"),
                check("impressions_accounted", not wrong,
                      f"{sum(written.values())} rows, as the daily activity counts" if not wrong else
                      "rows against the daily activity's count: " + ", ".join(f"{k} {w} vs {e}" for k, (w, e) in wrong.items())),
            ]
        return dg.MaterializeResult(metadata=meta, check_results=results)

    return [window_impressions]
