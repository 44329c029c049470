"""The event vocabulary for intent mining (DIGMN, WSDM 2023): what happened in each session, as counts.

DIGMN treats a session as a bag of event types (LDA over sessions finds the basic intents) and its "activity
LSTM" baseline reads event-type counts per day. The NCM log has no event stream, only impressions with
action flags, so each impression row contributes the events below; :data:`EVENT_TYPES` is the vocabulary,
in column order.

Two tables per cohort, both from the observation window only:

- ``session_events``: one row per session of the ``sessions`` table, keyed like it by
  ``(cohort_day, user_id, global_session_idx)``. Sessions are not recomputed: each feed request (its
  impressions share its ``impressTime``) is placed in the session whose requests span that time
  (``start_ms <= t <= last_request_ms``), so the ids are the ``sessions`` table's by construction, whatever
  gap it was built with. ``impressions`` therefore equals the session's ``total_impressions``
  (:func:`check_session_events` counts any session where not).
- ``user_day_events``: one row per cohort user and observation day (``day_num`` 1..observation days,
  zero-filled), by each impression's own ``dt``: the event types x 14 days matrix of the activity LSTM.

Leakage: only impressions with ``dt`` in the observation window are read (from ``window_impressions``, the raw
rows of each cohort's window). A swipe-down list hangs on a
clicked card but its entries carry their own ``logtime``, up to about an hour later; an entry logged at or
after local midnight of the first label day is dropped, so a card opened at 23:55 on the last observation
day contributes only the entries viewed before midnight. ``last_event_ms`` is the latest moment an event of
the row happened (request time or kept swipe-down entry), for the leakage check.

Card type comes from ``mlog_demographics`` (``type`` 2 = music video, 1 = image set); a card missing from it
(about 0.03% of impressions) counts as not a video.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.domain.calendar import Calendar
from churn_dagster.stages.cohorts.sql.cohorts import cohort_paths
from churn_dagster.stages.features.sql.window import window_paths
from churn_dagster.storage.duck import literal_path, used_params, write_partitions
from churn_dagster.storage.lake import Lake, require

VIDEO_CARD_TYPE = 2

# (column, definition): the event types, each counted per session and per day.
EVENT_TYPES: tuple[tuple[str, str], ...] = (
    ("impressions", "cards shown in the feed (one per impression row)"),
    ("clicks", "cards opened from the feed (isClick)"),
    ("likes", "cards liked (isLike)"),
    ("shares", "cards shared (isShare)"),
    ("comments", "comments written (isComment)"),
    ("comment_views", "comment sections opened (isViewComment)"),
    ("homepage_visits", "creators' homepages visited from a card (isIntoPersonalHomepage)"),
    ("swipe_views", "cards viewed in the swipe-down list under an opened card (one per detail_items entry)"),
    ("swipe_actions", "swipe-down entries with a like, share, comment, comment view or homepage visit"),
    ("video_impressions", "the impressions that showed a music-video card (mlog type 2); a subset of impressions"),
    ("video_clicks", "the clicks that opened a music-video card; a subset of clicks"),
)
EVENT_COLUMNS: tuple[str, ...] = tuple(name for name, _ in EVENT_TYPES)

# Local midnight starting the user's first label day, in epoch ms (Asia/Shanghai).
_LABEL_START_MS = f"(($first_epoch_day + u.observation_end_dt)::BIGINT * 86400 - {fmt.SHANGHAI_UTC_OFFSET_SECONDS}) * 1000"
_KEPT_ITEMS = "list_filter(i.detail_items, lambda x: x.logtime_ms < u.label_start_ms)"  # NULL without a list
_EVENT_SQL = {
    "impressions": "1",
    "clicks": "i.is_click::INTEGER",
    "likes": "i.is_like::INTEGER",
    "shares": "i.is_share::INTEGER",
    "comments": "i.is_comment::INTEGER",
    "comment_views": "i.is_view_comment::INTEGER",
    "homepage_visits": "i.is_into_homepage::INTEGER",
    "swipe_views": f"coalesce(len({_KEPT_ITEMS}), 0)",
    "swipe_actions": f"coalesce(len(list_filter({_KEPT_ITEMS}, lambda x: x.is_like OR x.is_share OR x.is_comment "
                     "OR x.is_view_comment OR x.is_into_homepage)), 0)",
    "video_impressions": f"coalesce(c.type = {VIDEO_CARD_TYPE}, false)::INTEGER",
    "video_clicks": f"(i.is_click AND coalesce(c.type = {VIDEO_CARD_TYPE}, false))::INTEGER",
}
assert tuple(_EVENT_SQL) == EVENT_COLUMNS

_SUMS = ", ".join(f"sum(e.{c})::BIGINT AS {c}" for c in EVENT_COLUMNS)

# One row per feed request (the impressions of a request share its time and day, about 3.4 of them on the
# twin): the session join and the daily sums then read a third of the rows an impression-level table has.
EVENTS_SQL = f"""
CREATE OR REPLACE TEMP TABLE _request_events AS
WITH u AS (
    SELECT user_id, cohort_day, first_dt, observation_end_dt, {_LABEL_START_MS} AS label_start_ms
    FROM read_parquet($cohort_paths, hive_partitioning = false) u
)
SELECT i.user_id, u.cohort_day, i.dt - u.first_dt + 1 AS day_num, i.impress_time_ms AS t,
       max(greatest(i.impress_time_ms, coalesce(list_max(list_transform({_KEPT_ITEMS}, lambda x: x.logtime_ms)), 0)))
           AS last_event_ms,
       {", ".join(f"sum({sql})::BIGINT AS {name}" for name, sql in _EVENT_SQL.items())}
FROM read_parquet($impression_paths, hive_partitioning = false) i
JOIN u ON i.user_id = u.user_id AND i.dt BETWEEN u.first_dt AND u.observation_end_dt
LEFT JOIN (SELECT mlog_id, type FROM read_parquet($card_path, hive_partitioning = false)) c ON c.mlog_id = i.mlog_id
GROUP BY i.user_id, u.cohort_day, i.dt, u.first_dt, i.impress_time_ms
"""

SESSION_EVENTS_SQL = f"""
CREATE OR REPLACE TEMP TABLE _session_events AS
SELECT s.user_id, s.cohort_day, s.global_session_idx, s.day_num, s.start_ms,
       max(e.last_event_ms) AS last_event_ms, {_SUMS}
FROM read_parquet($session_paths, hive_partitioning = false) s
JOIN _request_events e ON e.user_id = s.user_id AND e.t BETWEEN s.start_ms AND s.last_request_ms
GROUP BY s.user_id, s.cohort_day, s.global_session_idx, s.day_num, s.start_ms
"""

DAILY_EVENTS_SQL = f"""
CREATE OR REPLACE TEMP TABLE _user_day_events AS
WITH grid AS (
    SELECT u.user_id, u.cohort_day, d.day_num, u.first_dt + d.day_num - 1 AS dt
    FROM read_parquet($cohort_paths, hive_partitioning = false) u
    CROSS JOIN range(1, $observation_days + 1) d(day_num)
),
daily AS (SELECT e.user_id, e.day_num, {_SUMS} FROM _request_events e GROUP BY e.user_id, e.day_num)
SELECT g.user_id, g.cohort_day, g.day_num::INTEGER AS day_num, g.dt,
       {", ".join(f"coalesce(daily.{c}, 0)::BIGINT AS {c}" for c in EVENT_COLUMNS)}
FROM grid g LEFT JOIN daily ON daily.user_id = g.user_id AND daily.day_num = g.day_num
"""


def build_session_events(
    con: duckdb.DuckDBPyConnection, lake: Lake, calendar: Calendar, cohorts: list[date]
) -> tuple[dict[date, int], dict[date, int]]:
    """Write ``session_events`` and ``user_day_events`` for each cohort; return their row counts.

    Reads ``cohort_users``, ``sessions``, ``window_impressions`` and ``mlog_demographics``.
    """
    card_path = require([lake.raw_snapshot("mlog_demographics")], "session_events")[0]
    users = cohort_paths(lake, "cohort_users", cohorts, "session_events")
    con.execute(
        EVENTS_SQL,
        {
            "cohort_paths": users,
            "impression_paths": window_paths(lake, cohorts, "session_events"),
            "card_path": literal_path(card_path),
            "first_epoch_day": (calendar.first_day - date(1970, 1, 1)).days,
        },
    )
    con.execute(SESSION_EVENTS_SQL, {"session_paths": cohort_paths(lake, "sessions", cohorts, "session_events")})
    con.execute(DAILY_EVENTS_SQL, {"cohort_paths": users, "observation_days": calendar.observation_days})
    per_session = write_partitions(
        con, "_session_events", "cohort_day", {c: lake.cohort("session_events", c) for c in cohorts},
        "user_id, global_session_idx",
    )
    per_day = write_partitions(
        con, "_user_day_events", "cohort_day", {c: lake.cohort("user_day_events", c) for c in cohorts}, "user_id, day_num"
    )
    for table in ("_request_events", "_session_events", "_user_day_events"):
        con.execute(f"DROP TABLE {table}")
    return per_session, per_day


@dataclass(frozen=True)
class SessionEventChecks:
    """What the written tables must satisfy; every count is zero when they do."""

    label_period_rows: int  # rows with an event at or after the label period's start, or a day outside the window
    unmatched_sessions: int  # sessions of ``sessions`` without an events row, or whose impressions disagree
    missing_days: int  # users without exactly one row per observation day

    @property
    def passed(self) -> bool:
        return self.label_period_rows == self.unmatched_sessions == self.missing_days == 0


def check_session_events(
    con: duckdb.DuckDBPyConnection, lake: Lake, calendar: Calendar, cohorts: list[date]
) -> SessionEventChecks:
    """Assertion queries over the written files, in the manner of the ``no_label_period_rows`` checks."""
    params = {
        "u": cohort_paths(lake, "cohort_users", cohorts, "session_events check"),
        "e": cohort_paths(lake, "session_events", cohorts, "session_events check"),
        "d": cohort_paths(lake, "user_day_events", cohorts, "session_events check"),
        "s": cohort_paths(lake, "sessions", cohorts, "session_events check"),
        "first_epoch_day": (calendar.first_day - date(1970, 1, 1)).days,
        "observation_days": calendar.observation_days,
    }

    def one(sql: str) -> int:
        return int(con.execute(sql, used_params(sql, params)).fetchone()[0])

    leaks = one(
        f"""SELECT (SELECT coalesce(count_if(e.last_event_ms >= {_LABEL_START_MS}
                                          OR e.day_num NOT BETWEEN 1 AND $observation_days), 0)
                    FROM read_parquet($e, hive_partitioning = false) e JOIN read_parquet($u, hive_partitioning = false) u
                    USING (user_id))
                 + (SELECT coalesce(count_if(d.dt > u.observation_end_dt OR d.dt < u.first_dt), 0)
                    FROM read_parquet($d, hive_partitioning = false) d JOIN read_parquet($u, hive_partitioning = false) u
                    USING (user_id))"""
    )
    unmatched = one(
        """SELECT count(*) FROM read_parquet($s, hive_partitioning = false) s
           LEFT JOIN read_parquet($e, hive_partitioning = false) e USING (user_id, global_session_idx)
           WHERE e.impressions IS DISTINCT FROM s.total_impressions"""
    )
    missing = one(
        """SELECT count(*) FROM read_parquet($u, hive_partitioning = false) u
           LEFT JOIN (SELECT user_id, count(DISTINCT day_num) AS days, count(*) AS n
                      FROM read_parquet($d, hive_partitioning = false) GROUP BY user_id) d USING (user_id)
           WHERE coalesce(d.days, 0) <> $observation_days OR d.n <> $observation_days"""
    )
    return SessionEventChecks(leaks, unmatched, missing)
