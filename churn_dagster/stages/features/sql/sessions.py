"""Sessions of the observation window, with every per-session feature of SPEC.md "Sessions".

Rule (the reference study's): sort a user's impressions by time; a gap of ``gap_minutes`` or more starts a
new session, anything shorter continues it; sessions have no maximum length. The cards of one feed request
share their ``impressTime``, so they always fall into the same session: the SQL first collapses each
request into one row and sessionises requests, which sorts about a third as many rows as sorting
impressions would (3 cards per request on average) and needs no tie-breaking to be deterministic.

Duration: ``impressTime`` is the time of a feed request, shared by every card it returned, so the span
between requests is zero for most sessions. A session therefore lasts from its first request to the
latest moment a card was still on screen, ``max(impressTime + mlogViewTime)`` over its impressions
(unclicked cards count with zero view time). A single-request session without clicks lasts 0 minutes.
"""

from __future__ import annotations

from datetime import date

import duckdb

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.domain.calendar import Calendar
from churn_dagster.stages.cohorts.sql.cohorts import cohort_paths
from churn_dagster.stages.features.sql.window import window_paths
from churn_dagster.storage.duck import exact_sum, write_partitions
from churn_dagster.storage.lake import Lake

_LOCAL = f"(start_ms // 1000 + {fmt.SHANGHAI_UTC_OFFSET_SECONDS})"


def session_numbering_ctes(requests: str, user: str = "user_id") -> str:
    """The gap rule as two common table expressions, ``marked`` and ``numbered`` (each followed by a comma).

    ``requests`` names a relation with one row per user and feed request, with the user's key in column
    ``user`` (the continuation requests number their users with integers, which partition more cheaply than
    the text IDs) and ``t`` (the request's ``impressTime`` in epoch ms); ``numbered`` adds ``global_session_idx`` (1.. per user, in
    time order). The query binds ``$gap_ms``: a gap of that many milliseconds or more starts a session. The
    ``sessions`` table and the trend labels (:mod:`churn_dagster.studies.trends.sql.trends`) both sessionise with it.
    """
    return f"""marked AS (
    SELECT *, CASE WHEN t - lag(t) OVER (PARTITION BY {user} ORDER BY t) < $gap_ms THEN 0 ELSE 1 END AS starts_session
    FROM {requests}
),
numbered AS (
    SELECT *, sum(starts_session) OVER (PARTITION BY {user} ORDER BY t ROWS UNBOUNDED PRECEDING)::BIGINT
              AS global_session_idx
    FROM marked
),"""


SESSIONS_SQL = f"""
CREATE OR REPLACE TEMP TABLE _sessions AS
WITH users AS (SELECT user_id, cohort_day, first_dt, observation_end_dt FROM read_parquet($cohort_paths, hive_partitioning = false)),
requests AS (
    SELECT i.user_id, u.cohort_day, any_value(u.first_dt) AS first_dt, i.impress_time_ms AS t,
           count(*) AS impressions, count_if(i.is_click) AS clicks, count_if(i.is_like) AS likes,
           count_if(i.is_share) AS shares, count_if(i.is_comment) AS comments,
           count_if(i.is_into_homepage) AS into_homepage, count_if(i.is_view_comment) AS view_comments,
           count_if(i.is_like OR i.is_share OR i.is_comment OR i.is_view_comment OR i.is_into_homepage) AS interactions,
           max(i.impress_position) AS max_position, {exact_sum('coalesce(i.mlog_view_time, 0)')} AS view_s,
           max(coalesce(i.mlog_view_time, 0)) AS longest_view_s
    FROM read_parquet($impression_paths, hive_partitioning = false) i JOIN users u
      ON i.user_id = u.user_id AND i.dt BETWEEN u.first_dt AND u.observation_end_dt
    GROUP BY i.user_id, u.cohort_day, i.impress_time_ms
),
{session_numbering_ctes('requests')}
sessions AS (
    SELECT user_id, cohort_day, any_value(first_dt) AS first_dt, global_session_idx,
           min(t) AS start_ms, max(t) AS last_request_ms, max(t + longest_view_s * 1000) AS end_ms,
           sum(impressions)::BIGINT AS total_impressions, count(*) AS feed_requests,
           sum(clicks)::BIGINT AS total_clicks, sum(likes)::BIGINT AS total_likes,
           sum(shares)::BIGINT AS total_shares, sum(comments)::BIGINT AS total_comments,
           sum(into_homepage)::BIGINT AS total_into_homepage, sum(view_comments)::BIGINT AS total_view_comments,
           sum(interactions)::BIGINT AS interactions,
           max(max_position) AS max_impress_position, {exact_sum('view_s')} AS view_time_s
    FROM numbered GROUP BY user_id, cohort_day, global_session_idx
),
placed AS (
    SELECT *, {_LOCAL} // 86400 - $first_epoch_day + 1 AS start_dt FROM sessions
)
SELECT user_id, cohort_day, global_session_idx,
       row_number() OVER (PARTITION BY user_id, start_dt ORDER BY global_session_idx) AS daily_session_idx,
       start_dt - first_dt + 1 AS day_num,
       start_dt, start_ms, last_request_ms, end_ms,
       (end_ms - start_ms) / 60000.0 AS duration_min,
       coalesce((start_ms - lag(last_request_ms) OVER (PARTITION BY user_id ORDER BY global_session_idx)) / 60000.0,
                -1) AS gap_min,
       ({_LOCAL} % 86400) / 3600.0 AS hour_of_day,
       ({_LOCAL} // 86400 + 3) % 7 AS weekday,
       total_impressions, feed_requests, total_clicks, total_likes, total_shares, total_comments,
       total_into_homepage, total_view_comments, interactions, max_impress_position, view_time_s,
       total_clicks / total_impressions AS ctr,
       interactions / total_impressions AS interaction_rate,
       CASE WHEN total_clicks > 0 THEN total_likes / total_clicks ELSE 0 END AS like_rate,
       CASE WHEN total_clicks > 0 THEN total_shares / total_clicks ELSE 0 END AS share_rate,
       CASE WHEN total_clicks > 0 THEN total_comments / total_clicks ELSE 0 END AS comment_rate
FROM placed
"""


def build_sessions(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    calendar: Calendar,
    cohorts: list[date],
    gap_minutes: float,
) -> dict[date, int]:
    """Sessionize every cohort user's observation window from ``window_impressions``; one Parquet file per cohort."""
    con.execute(
        SESSIONS_SQL,
        {
            "cohort_paths": cohort_paths(lake, "cohort_users", cohorts, "sessions"),
            "impression_paths": window_paths(lake, cohorts, "sessions"),
            "gap_ms": int(gap_minutes * 60_000),
            "first_epoch_day": (calendar.first_day - date(1970, 1, 1)).days,
        },
    )
    written = write_partitions(
        con,
        "_sessions",
        "cohort_day",
        {c: lake.cohort("sessions", c) for c in cohorts},
        "user_id, global_session_idx",
    )
    con.execute("DROP TABLE _sessions")
    return written
