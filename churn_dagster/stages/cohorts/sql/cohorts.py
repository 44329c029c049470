"""Daily user activity and cohort membership.

``user_day_activity`` condenses one day of impressions to one row per active user (a few percent of the
impression rows). First appearances, label-period activity and active-day counts all read it instead of
re-scanning impressions.
"""

from __future__ import annotations

from datetime import date

import duckdb

from churn_dagster.domain.calendar import Calendar
from churn_dagster.storage.duck import (
    copy_to_parquet,
    exact_sum,
    literal_path,
    literal_paths,
    write_partitions,
)
from churn_dagster.storage.lake import Lake, require

USER_DAY_ACTIVITY_SQL = f"""
SELECT user_id, dt,
       count(*) AS impressions,
       count_if(is_click) AS clicks,
       count_if(is_like) AS likes,
       count_if(is_share) AS shares,
       count_if(is_comment) AS comments,
       count_if(is_view_comment) AS view_comments,
       count_if(is_into_homepage) AS homepage_visits,
       coalesce({exact_sum('mlog_view_time')}, 0) AS view_time_s,
       count(DISTINCT impress_time_ms) AS feed_requests,
       min(impress_time_ms) AS first_impression_ms,
       max(impress_time_ms) AS last_impression_ms
FROM read_parquet($path, hive_partitioning = false)
GROUP BY user_id, dt
"""


def build_user_day_activity(con: duckdb.DuckDBPyConnection, lake: Lake, day: date) -> int:
    source = require([lake.raw_day("impression_data", day)], "user_day_activity")[0]
    return copy_to_parquet(
        con, f"{USER_DAY_ACTIVITY_SQL} ORDER BY user_id", lake.daily("user_day_activity", day), {"path": literal_path(source)}
    )


def activity_paths(lake: Lake, calendar: Calendar, dts: range | list[int], what: str) -> list[str]:
    return literal_paths(require((lake.daily("user_day_activity", calendar.day(d)) for d in dts), what))


COHORT_USERS_SQL = """
CREATE OR REPLACE TEMP TABLE _cohort_users AS
SELECT user_id,
       $first_day + (first_dt - 1) AS cohort_day,
       first_dt,
       first_dt + $observation_days - 1 AS observation_end_dt,
       first_dt + $observation_days AS label_start_dt,
       first_dt + $observation_days + $label_days - 1 AS label_end_dt
FROM (SELECT user_id, min(dt) AS first_dt FROM read_parquet($paths, hive_partitioning = false) GROUP BY user_id)
WHERE first_dt BETWEEN $lo AND $hi
"""


def build_cohort_users(
    con: duckdb.DuckDBPyConnection, lake: Lake, calendar: Calendar, cohorts: list[date]
) -> dict[date, int]:
    """Users whose first impression falls on each cohort day, with their window bounds (as ``dt``).

    A user's first day is the minimum over every day up to the last cohort, so the earlier days are
    read too: that is what makes a day-5 user *new* on day 5.
    """
    lo, hi = calendar.dt(min(cohorts)), calendar.dt(max(cohorts))
    con.execute(
        COHORT_USERS_SQL,
        {
            "paths": activity_paths(lake, calendar, range(1, hi + 1), "cohort_users"),
            "first_day": calendar.first_day,
            "observation_days": calendar.observation_days,
            "label_days": calendar.label_days,
            "lo": lo,
            "hi": hi,
        },
    )
    written = write_partitions(
        con, "_cohort_users", "cohort_day", {c: lake.cohort("cohort_users", c) for c in cohorts}, "user_id"
    )
    con.execute("DROP TABLE _cohort_users")
    return written


def cohort_paths(lake: Lake, table: str, cohorts: list[date], what: str) -> list[str]:
    return literal_paths(require((lake.cohort(table, c) for c in cohorts), what))


def cohort_days_dts(calendar: Calendar, cohorts: list[date], window: str) -> list[int]:
    """Every ``dt`` that the observation (or label) windows of ``cohorts`` cover, in order."""
    spans = calendar.observation_dts if window == "observation" else calendar.label_dts
    return sorted({d for c in cohorts for d in spans(c)})
