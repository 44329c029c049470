"""The inputs of the trend models, built from the first trend period alone.

The DIGMN trend labels compare period 1 (``dt f .. f+P1-1`` of a cohort starting on ``f``) with period 2 (the
``P2`` days after it), so no input of a trend model may read a day of period 2. Period 1 is the observation
window or its first days (``CHURN_TREND_FIRST_DAYS`` at most ``CHURN_OBSERVATION_DAYS``, checked in
:mod:`churn_dagster.settings`), so the churn tables of the observation window (``sessions``, ``kpi_features``)
reach into period 2 whenever P1 is shorter, and the trend models do not read them. Instead the cohort
transforms run again over a calendar whose observation window is period 1 and whose label period is period 2
(:func:`first_period_calendar`), into the lake area ``trend_inputs/``:

- ``cohort_users``: the members of ``cohorts/cohort_users`` (the same users), their window bounds those of
  period 1 and period 2;
- ``window_impressions``: the impressions of period 1, extracted from its raw days (a hard link to the
  cohort's own extract when period 1 is the observation window), which every table below reads;
- ``sessions``: the sessions of period 1 by the same gap rule, from period-1 impressions only: a session
  still running at local midnight into period 2 ends with its last request of period 1;
- ``kpi_features``: the KPI aggregates of period 1 (the models' macro features), with ``mlog_stats`` and
  ``creator_stats`` of period-1 days only;
- ``session_events`` and ``user_day_events``: the event vocabulary per period-1 session and per period-1 day
  (:mod:`churn_dagster.studies.trends.sql.session_events`), a swipe-down entry logged in period 2 left out.

When period 1 is the observation window (14 days by default), the transforms would read the same days with
the same bounds and write the same bytes as the cohort tables: ``sessions`` and ``kpi_features`` are then hard links to the ``cohorts/`` files
(:func:`reuses_cohort_tables`; the trend assets then depend on those tables), which saves their second build
(about 45 s of the full-scale graph and 17 s of the daily path). Any other periods build them here.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import date

import duckdb
import pyarrow.parquet as pq

from churn_dagster.domain.calendar import Calendar
from churn_dagster.stages.cohorts.sql.cohorts import cohort_paths
from churn_dagster.stages.features.sql import features as feature_sql
from churn_dagster.stages.features.sql import sessions as session_sql
from churn_dagster.stages.features.sql import window as window_sql
from churn_dagster.storage.duck import write_partitions
from churn_dagster.storage.lake import Lake, require
from churn_dagster.studies.trends.sql import session_events as events_sql
from churn_dagster.studies.trends.sql.trends import TrendSettings

FIRST_PERIOD_USERS_SQL = """
CREATE OR REPLACE TEMP TABLE _first_period_users AS
SELECT user_id, cohort_day, first_dt,
       first_dt + $first_days - 1 AS observation_end_dt,
       first_dt + $first_days AS label_start_dt,
       first_dt + $first_days + $second_days - 1 AS label_end_dt
FROM read_parquet($cohort_paths, hive_partitioning = false)
"""


def first_period_calendar(calendar: Calendar, settings: TrendSettings) -> Calendar:
    """``calendar`` with period 1 as its observation window and period 2 as its label period: the cohort
    transforms run over it read the days of period 1 and nothing after them."""
    return Calendar(calendar.first_day, calendar.last_day, settings.first_period_days, settings.second_period_days)


def reuses_cohort_tables(calendar: Calendar, settings: TrendSettings) -> bool:
    """Whether period 1 is the churn calendar's observation window, so that the cohort ``sessions`` and
    ``kpi_features`` are the period-1 tables: both read the observation window's days and bounds alone (the
    label period only marks where it ends), whatever the lengths of period 2 and of the label period."""
    return first_period_calendar(calendar, settings).observation_days == calendar.observation_days


def _link_cohort_tables(lake: Lake, area: Lake, table: str, cohorts: list[date]) -> dict[date, int]:
    """``area``'s files of ``table`` as hard links to ``lake``'s (a copy where the file system has none), each
    swapped in by one rename; their row counts."""
    rows = {}
    for cohort, source in zip(cohorts, require([lake.cohort(table, c) for c in cohorts], "trend inputs"), strict=True):
        target = area.cohort(table, cohort)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.parent / f".{target.name}.{uuid.uuid4().hex}"
        try:
            os.link(source, temp)
        except OSError:
            shutil.copy2(source, temp)
        os.replace(temp, target)
        rows[cohort] = pq.read_metadata(target).num_rows
    return rows


def build_trend_inputs(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    calendar: Calendar,
    settings: TrendSettings,
    cohorts: list[date],
    gap_minutes: float,
    publish_day_anchor: int,
    use_leaky_columns: bool = False,
    use_content_stats: bool = True,
) -> dict[str, dict[date, int]]:
    """Write the period-1 tables of ``cohorts`` under ``trend_inputs/`` and return the rows of each
    (``users``, ``sessions``, ``macro``, ``session_events``, ``user_day_events``, per cohort). Reads
    ``cohort_users`` and the period-1 days of the raw impressions, daily activity and content stats (the
    impressions from the cohorts' ``window_impressions`` when period 1 is the observation window)."""
    area, period = lake.trend_inputs(), first_period_calendar(calendar, settings)
    con.execute(FIRST_PERIOD_USERS_SQL, {
        "cohort_paths": cohort_paths(lake, "cohort_users", cohorts, "trend inputs"),
        "first_days": settings.first_period_days,
        "second_days": settings.second_period_days,
    })
    users = write_partitions(con, "_first_period_users", "cohort_day",
                             {c: area.cohort("cohort_users", c) for c in cohorts}, "user_id")
    con.execute("DROP TABLE _first_period_users")
    if reuses_cohort_tables(calendar, settings):
        _link_cohort_tables(lake, area, window_sql.TABLE, cohorts)
        sessions = _link_cohort_tables(lake, area, "sessions", cohorts)
        macro = _link_cohort_tables(lake, area, "kpi_features", cohorts)
    else:
        window_sql.build_window_impressions(con, area, period, cohorts)
        sessions = session_sql.build_sessions(con, area, period, cohorts, gap_minutes)
        macro = feature_sql.build_kpi_features(con, area, period, cohorts, publish_day_anchor, use_leaky_columns,
                                               use_content_stats)
    per_session, per_day = events_sql.build_session_events(con, area, period, cohorts)
    return {"users": users, "sessions": sessions, "macro": macro, "session_events": per_session,
            "user_day_events": per_day}
