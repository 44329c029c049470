"""The event vocabulary of each session and day of a cohort's observation window (the input of intent mining)."""

import dagster as dg

from churn_dagster.defs.asset_attributes import DUCKDB_PARQUET
from churn_dagster.defs.automation.conditions import cohort_ready
from churn_dagster.defs.constants import OWNERS
from churn_dagster.defs.metadata import add_partition_metadata, check, schema_metadata, table
from churn_dagster.defs.partitions import CALENDAR, cohort_partitions, days_read, observation_days
from churn_dagster.defs.resources import LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.transforms import session_events as events_sql
from churn_dagster.transforms.duck import literal_paths

_SPEC = dict(group_name="trends", kinds=set(DUCKDB_PARQUET), owners=OWNERS, code_version="1",
             automation_condition=cohort_ready)


@dg.multi_asset(
    specs=[
        dg.AssetSpec("session_events", description="Per session of the `sessions` table (same key): the counts of "
                     "each event type of the vocabulary (impressions, clicks, likes, shares, comments, comment views, "
                     "homepage visits, swipe-down views and actions, video impressions and clicks). Each session is "
                     "a bag of these events for LDA.",
                     deps=["sessions", "cohort_users", "raw_mlog_demographics",
                           dg.AssetDep("raw_impressions", partition_mapping=observation_days)], **_SPEC),
        dg.AssetSpec("user_day_events", description="Per cohort user and observation day (zero-filled): the same "
                     "counts, the event types x days matrix of the paper's activity LSTM baseline.",
                     deps=["cohort_users", dg.AssetDep("raw_impressions", partition_mapping=observation_days)],
                     **_SPEC),
    ],
    partitions_def=cohort_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[
        dg.AssetCheckSpec("no_label_period_rows", asset="session_events", blocking=True,
                          description="No event at or after the label period's start; every day inside the window."),
        dg.AssetCheckSpec("matches_sessions", asset="session_events", blocking=True,
                          description="One row per session of `sessions`, with the same number of impressions."),
        dg.AssetCheckSpec("days_complete", asset="user_day_events", blocking=True,
                          description="Exactly one row per cohort user and observation day."),
    ],
)
def session_event_counts(context: dg.AssetExecutionContext, lake: LakeResource):
    cohorts = [parse_day(k) for k in context.partition_keys]
    with lake.connect() as con:
        events_sql.build_session_events(con, lake.lake, CALENDAR, cohorts)
        found = events_sql.check_session_events(con, lake.lake, CALENDAR, cohorts)
        per_session = [lake.lake.cohort("session_events", c) for c in cohorts]
        per_day = [lake.lake.cohort("user_day_events", c) for c in cohorts]

        def totals(key, path):
            sums = con.execute(f"SELECT {', '.join(f'sum({c})' for c in events_sql.EVENT_COLUMNS)} "
                               "FROM read_parquet($f, hive_partitioning = false)", {"f": literal_paths([path])}).fetchone()
            return {"reads_days": days_read(CALENDAR.observation_dts(parse_day(key))),
                    "event_totals": table(["event type", "events"],
                                          [(c, int(v or 0)) for c, v in zip(events_sql.EVENT_COLUMNS, sums, strict=True)])}

        keys = context.partition_keys
        add_partition_metadata(context, con, dict(zip(keys, per_session, strict=True)), totals, asset_key="session_events")
        add_partition_metadata(context, con, dict(zip(keys, per_day, strict=True)), asset_key="user_day_events")
        session_meta, day_meta = schema_metadata(con, per_session), schema_metadata(con, per_day)
    yield dg.MaterializeResult(asset_key="session_events", metadata={**session_meta, "vocabulary": dg.MetadataValue.md(
        "\n".join(f"- `{name}`: {what}" for name, what in events_sql.EVENT_TYPES))})
    yield dg.MaterializeResult(asset_key="user_day_events", metadata=day_meta)
    yield check("no_label_period_rows", found.label_period_rows == 0,
                f"{found.label_period_rows} rows with an event at or after the label period", asset_key="session_events")
    yield check("matches_sessions", found.unmatched_sessions == 0,
                f"{found.unmatched_sessions} sessions without a matching events row", asset_key="session_events")
    yield check("days_complete", found.missing_days == 0,
                f"{found.missing_days} users without one row per observation day", asset_key="user_day_events")
