"""What the trend models read of each cohort, from the first trend period alone: its sessions, the users' KPI
aggregates (the macro features), and the event vocabulary of each session and day (the input of intent mining).

Period 1 is the cohort's first ``CHURN_TREND_FIRST_DAYS`` days, the observation window or its first days;
the labels describe the days after it, so every table here reads period 1 and its partition mappings say so
(:mod:`churn_dagster.studies.trends.sql.inputs`). The tables live under ``trend_inputs/``.
"""

import dagster as dg

from churn_dagster.core import checks
from churn_dagster.core.asset_attributes import DUCKDB_PARQUET
from churn_dagster.core.conditions import cohort_ready
from churn_dagster.core.constants import OWNERS
from churn_dagster.core.metadata import add_partition_metadata, check, schema_metadata, table
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.storage.duck import literal_paths
from churn_dagster.studies.trends.partitions import TrendPartitions
from churn_dagster.studies.trends.sql import session_events as events_sql
from churn_dagster.studies.trends.sql.inputs import build_trend_inputs, first_period_calendar, reuses_cohort_tables


# 2: period 1 only, under trend_inputs/ (before: the observation window, which may reach into period 2)
def trend_input_assets(t: TrendPartitions) -> list[dg.AssetsDefinition]:
    """The period-1 inputs: sessions, macro features, session and day events."""
    p = t.graph

    _SPEC = dict(group_name="trends", kinds=set(DUCKDB_PARQUET), owners=OWNERS, code_version="2",
                 automation_condition=cohort_ready)
    PERIOD = first_period_calendar(p.calendar, t.windows)
    # With the observation window as period 1, its impressions are the cohort's window_impressions; otherwise
    # the period-1 days are read from the raw table (the window's extract would hold period 2 too).
    _IMPRESSIONS = ("window_impressions" if reuses_cohort_tables(p.calendar, t.windows)
               else dg.AssetDep("raw_impressions", partition_mapping=t.first_period))
    _FIRST_PERIOD = f"the first trend period (the cohort's first {t.windows.first_period_days} days)"
    # With the observation window as period 1, the period-1 sessions and KPI aggregates are the cohort tables.
    reused = ({"sessions": ["sessions"], "kpi_features": ["kpi_features"]} if reuses_cohort_tables(p.calendar, t.windows)
              else {"sessions": [], "kpi_features": []})


    def _no_second_period(asset: str) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec("no_label_period_rows", asset=asset, blocking=True,
                                 description="No input at or after the start of the second trend period, which the "
                                 "trend labels describe.")


    @dg.multi_asset(
        specs=[
            dg.AssetSpec("trend_sessions", description=f"The sessions of {_FIRST_PERIOD}, by the gap rule and with "
                         "the columns of `sessions`, from that period's impressions only: a session still running at "
                         "midnight into period 2 ends with its last request of period 1. The trend models' session "
                         "context. Under trend_inputs/sessions/.",
                         deps=["cohort_users", _IMPRESSIONS, *reused["sessions"]], **{**_SPEC, "code_version": "2"}),
            dg.AssetSpec("trend_macro_features", description=f"The KPI aggregates of `kpi_features` over {_FIRST_PERIOD} "
                         "(content stats of those days only): the macro features of the trend models. Under "
                         "trend_inputs/kpi_features/.",
                         deps=["cohort_users", "raw_user_demographics", "raw_mlog_demographics",
                               "raw_creator_demographics", _IMPRESSIONS,
                               dg.AssetDep("user_day_activity", partition_mapping=t.first_period),
                               dg.AssetDep("raw_mlog_stats", partition_mapping=t.first_period),
                               dg.AssetDep("raw_creator_stats", partition_mapping=t.first_period),
                               *reused["kpi_features"]],
                         **{**_SPEC, "code_version": "2"}),
            dg.AssetSpec("session_events", description="Per session of `trend_sessions` (same key): the counts of "
                         "each event type of the vocabulary (impressions, clicks, likes, shares, comments, comment views, "
                         "homepage visits, swipe-down views and actions, video impressions and clicks). Each session is "
                         "a bag of these events for LDA.",
                         deps=["trend_sessions", "cohort_users", "raw_mlog_demographics", _IMPRESSIONS], **_SPEC),
            dg.AssetSpec("user_day_events", description=f"Per cohort user and day of {_FIRST_PERIOD} (zero-filled): "
                         "the same counts, the event types x days matrix of the paper's activity LSTM baseline.",
                         deps=["cohort_users", "raw_mlog_demographics", _IMPRESSIONS], **_SPEC),
        ],
        partitions_def=p.cohort_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        check_specs=[
            _no_second_period("trend_sessions"),
            _no_second_period("trend_macro_features"),
            dg.AssetCheckSpec("one_row_per_cohort_user", asset="trend_macro_features", blocking=True),
            _no_second_period("session_events"),
            dg.AssetCheckSpec("matches_sessions", asset="session_events", blocking=True,
                              description="One row per session of `trend_sessions`, with the same number of impressions."),
            dg.AssetCheckSpec("days_complete", asset="user_day_events", blocking=True,
                              description="Exactly one row per cohort user and day of the first trend period."),
        ],
    )
    def trend_period_inputs(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        cohorts = [parse_day(k) for k in context.partition_keys]
        area = lake.lake.trend_inputs()
        with lake.connect() as con:
            build_trend_inputs(con, lake.lake, p.calendar, t.windows, cohorts, features.session_gap_minutes,
                               features.publish_day_anchor, features.use_leaky_columns, features.use_content_stats)
            found = events_sql.check_session_events(con, area, PERIOD, cohorts)
            paths = {t: checks.lake_paths(area, t, cohorts)
                     for t in ("cohort_users", "sessions", "kpi_features", "session_events", "user_day_events")}

            def reads(key, path, totals: bool = False):
                meta = {"reads_days": p.days_read(PERIOD.observation_dts(parse_day(key)))}
                if totals:
                    sums = con.execute(f"SELECT {', '.join(f'sum({c})' for c in events_sql.EVENT_COLUMNS)} "
                                       "FROM read_parquet($f, hive_partitioning = false)",
                                       {"f": literal_paths([path])}).fetchone()
                    meta["event_totals"] = table(["event type", "events"], [
                        (c, int(v or 0)) for c, v in zip(events_sql.EVENT_COLUMNS, sums, strict=True)])
                return meta

            tables = {"trend_sessions": "sessions", "trend_macro_features": "kpi_features",
                      "session_events": "session_events", "user_day_events": "user_day_events"}
            for asset, name in tables.items():
                add_partition_metadata(context, con, dict(zip(context.partition_keys, paths[name], strict=True)),
                                       lambda key, path, a=asset: reads(key, path, a == "session_events"), asset_key=asset)
            meta = {asset: schema_metadata(con, paths[name]) for asset, name in tables.items()}
            users = paths["cohort_users"]
            results = [
                checks.nothing_from_label_period(con, p.calendar, paths["sessions"], users, "last_request_ms", "trend_sessions"),
                checks.nothing_from_label_period(con, p.calendar, paths["kpi_features"], users, "last_impression_ms",
                                                 "trend_macro_features"),
                checks.one_row_per_cohort_user(con, paths["kpi_features"], users, "trend_macro_features"),
            ]
        yield dg.MaterializeResult(asset_key="trend_sessions", metadata={**meta["trend_sessions"], **features.metadata(p.calendar)})
        yield dg.MaterializeResult(asset_key="trend_macro_features",
                                   metadata={**meta["trend_macro_features"], **features.metadata(p.calendar)})
        yield dg.MaterializeResult(asset_key="session_events", metadata={**meta["session_events"], "vocabulary": dg.MetadataValue.md(
            "\n".join(f"- `{name}`: {what}" for name, what in events_sql.EVENT_TYPES))})
        yield dg.MaterializeResult(asset_key="user_day_events", metadata=meta["user_day_events"])
        yield from results
        yield check("no_label_period_rows", found.label_period_rows == 0,
                    f"{found.label_period_rows} rows with an event at or after the second trend period",
                    asset_key="session_events")
        yield check("matches_sessions", found.unmatched_sessions == 0,
                    f"{found.unmatched_sessions} sessions without a matching events row", asset_key="session_events")
        yield check("days_complete", found.missing_days == 0,
                    f"{found.missing_days} users without one row per day of the first trend period",
                    asset_key="user_day_events")

    return [trend_period_inputs]
