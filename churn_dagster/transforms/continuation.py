"""Session continuation (the Zooniverse task): at a feed request, will the session go on for 10, 20, 30 more minutes?

Two tables per cohort, both over the observation window of the cohort's users, in SQL over the raw Parquet:

- ``continuation_requests``: one row per **feed request**, i.e. per user and ``impressTime``. The log records
  cards, not requests, but every card a request returned carries the request's whole-second timestamp, so the
  cards sharing a user and an ``impressTime`` are one request (the ``sessions`` table groups them the same way
  and sessionises requests with the same gap rule, :func:`~churn_dagster.transforms.sessions.session_numbering_ctes`).
- ``continuation_examples``: the requests the models learn from, at most ``max_requests_per_user`` per user,
  with the user's split from ``user_splits``.

**Labels.** A session ends at its last request (``session_end_ms``; the view time of its last card is not
counted, since the log says when a card was opened but not when the user stopped). A request at ``t``
*continues for h minutes* iff ``session_end_ms - t >= h`` minutes: exactly h counts. The next session never
counts, however soon it starts (it is a new session because the gap was 30 minutes or more).

**Features** use only what was known at the request: its time (elapsed in the session, gap since the previous
request, local hour, weekday, day of the window), the cards it returned (count, deepest position) and the
requests and cards of the session so far, the clicks and other actions on the cards of *earlier* requests,
minutes since the last such click, and the user's sessions before this one in the window. The clicks on a
request's own cards are not known at the request (they happen after it; the log has no click time), so they
never enter its features, only those of the next request (``prev_request_clicks``). Every window frame that
feeds a feature ends at the current row or before it; the examples' ``features_use_only_the_past`` check
recounts them from the raw impressions without window functions.

**Censoring.** A session whose last request is less than the gap before the end of the observation window
may go on after it, in days the task must not read; its requests are kept in ``continuation_requests``
(flagged ``censored``) but never become examples.

**Sampling.** Heavy users have thousands of requests; each user's eligible (uncensored) requests are ordered
by ``md5(user_id:request_ms:seed)`` and the first ``max_requests_per_user`` are kept: the same sample on
every run, a different but equally uniform one for another seed, every request of a lighter user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import duckdb

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.domain.calendar import Calendar
from churn_dagster.transforms.cohorts import cohort_days_dts, cohort_paths
from churn_dagster.transforms.duck import literal_paths, used_params, write_partitions
from churn_dagster.transforms.lake import Lake, require
from churn_dagster.transforms.sessions import session_numbering_ctes

HORIZONS_MIN: tuple[int, ...] = (10, 20, 30)


def label_column(horizon_min: int) -> str:
    return f"continues_{horizon_min}min"


LABEL_COLUMNS = tuple(label_column(h) for h in HORIZONS_MIN)


@dataclass(frozen=True)
class ExampleSampling:
    """How many requests of a user become examples, and the seed of the hash that picks them."""

    max_requests_per_user: int = field(default=20, metadata={
        "ge": 1, "description": "Examples per user at most (a seeded hash picks them), so heavy users do not dominate."})
    seed: int = field(default=42, metadata={"description": "Seed of the per-user hash order of requests."})


_LOCAL_S = f"(t // 1000 + {fmt.SHANGHAI_UTC_OFFSET_SECONDS})"
# Local midnight starting the user's first label day, in epoch ms: the end of the observation window.
_WINDOW_END_MS = f"(($first_epoch_day + label_start_dt - 1)::BIGINT * 86400 - {fmt.SHANGHAI_UTC_OFFSET_SECONDS}) * 1000"
_LABELS = ",\n       ".join(f"session_end_ms - t >= {h * 60_000} AS {label_column(h)}" for h in HORIZONS_MIN)

REQUESTS_SQL = f"""
CREATE OR REPLACE TEMP TABLE _continuation_requests AS
WITH users AS (
    SELECT user_id, cohort_day, first_dt, observation_end_dt, label_start_dt
    FROM read_parquet($cohort_paths, hive_partitioning = false)
),
requests AS (
    SELECT i.user_id, any_value(u.cohort_day) AS cohort_day, any_value(u.first_dt) AS first_dt,
           any_value(u.label_start_dt) AS label_start_dt, i.impress_time_ms AS t,
           count(*) AS cards, max(i.impress_position) AS max_position, count_if(i.is_click) AS clicks,
           count_if(i.is_like OR i.is_share OR i.is_comment OR i.is_view_comment OR i.is_into_homepage) AS actions
    FROM read_parquet($impression_paths, hive_partitioning = false) i JOIN users u
      ON i.user_id = u.user_id AND i.dt BETWEEN u.first_dt AND u.observation_end_dt
    GROUP BY i.user_id, i.impress_time_ms
),
{session_numbering_ctes('requests')}
in_session AS (
    SELECT *,
           row_number() OVER s AS request_idx,
           min(t) OVER whole AS session_start_ms,
           max(t) OVER whole AS session_end_ms,  -- the future: for the labels only
           t - lag(t) OVER s AS since_prev_ms,
           coalesce(lag(clicks) OVER s, 0) AS prev_request_clicks,
           coalesce(lag(actions) OVER s, 0) AS prev_request_actions,
           sum(cards) OVER (s ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cards_so_far,
           coalesce(sum(clicks) OVER (s ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS clicks_so_far,
           coalesce(sum(actions) OVER (s ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS actions_so_far,
           max(CASE WHEN clicks > 0 THEN t END) OVER (s ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
               AS last_click_ms
    FROM numbered
    WINDOW s AS (PARTITION BY user_id, global_session_idx ORDER BY t),
           whole AS (PARTITION BY user_id, global_session_idx)
),
per_session AS (
    SELECT user_id, global_session_idx, min(t) AS start_ms, max(t) AS end_ms, count(*) AS requests,
           sum(cards) AS cards, sum(clicks) AS clicks
    FROM numbered GROUP BY user_id, global_session_idx
),
history AS (  -- the user's sessions before this one: every frame ends one session back
    SELECT user_id, global_session_idx,
           count(*) OVER before AS prior_sessions,
           coalesce(sum(requests) OVER before, 0) AS prior_requests,
           coalesce(sum(cards) OVER before, 0) AS prior_cards,
           coalesce(sum(clicks) OVER before, 0) AS prior_clicks,
           coalesce(avg((end_ms - start_ms) / 60000.0) OVER before, 0) AS prior_mean_session_min,
           coalesce(sum((end_ms - start_ms >= 600000)::INTEGER) OVER before, 0) AS prior_sessions_10min,
           (start_ms - lag(end_ms) OVER (PARTITION BY user_id ORDER BY global_session_idx)) / 60000.0
               AS minutes_since_prev_session
    FROM per_session
    WINDOW before AS (PARTITION BY user_id ORDER BY global_session_idx ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
)
SELECT user_id, cohort_day, global_session_idx, request_idx, t AS request_ms, session_start_ms, session_end_ms,
       {_WINDOW_END_MS} - session_end_ms < $gap_ms AS censored,
       (session_end_ms - t) / 60000.0 AS remaining_min,
       {_LABELS},
       (t - session_start_ms) / 60000.0 AS elapsed_min,
       coalesce(since_prev_ms, 0) / 60000.0 AS gap_prev_request_min,
       cards, max_position, cards_so_far, clicks_so_far, actions_so_far,
       (t - last_click_ms) / 60000.0 AS minutes_since_last_click,
       prev_request_clicks, prev_request_actions,
       sin(2 * pi() * ({_LOCAL_S} % 86400) / 86400.0) AS hour_sin,
       cos(2 * pi() * ({_LOCAL_S} % 86400) / 86400.0) AS hour_cos,
       sin(2 * pi() * (({_LOCAL_S} // 86400 + 3) % 7) / 7.0) AS weekday_sin,
       cos(2 * pi() * (({_LOCAL_S} // 86400 + 3) % 7) / 7.0) AS weekday_cos,
       {_LOCAL_S} // 86400 - $first_epoch_day - first_dt + 2 AS day_num,
       prior_sessions, prior_requests, prior_cards, prior_clicks, prior_mean_session_min, prior_sessions_10min,
       minutes_since_prev_session
FROM in_session JOIN history USING (user_id, global_session_idx)
"""

EXAMPLES_SQL = """
CREATE OR REPLACE TEMP TABLE _continuation_examples AS
SELECT r.*, s.split
FROM (
    SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY md5(user_id || ':' || request_ms || ':' || $seed), request_ms)
                  AS sample_rank
    FROM read_parquet($request_paths, hive_partitioning = false)
    WHERE NOT censored
) r
JOIN (SELECT user_id, split FROM read_parquet($split_paths, hive_partitioning = false)) s USING (user_id)
WHERE r.sample_rank <= $cap
"""


def _first_epoch_day(calendar: Calendar) -> int:
    return (calendar.first_day - date(1970, 1, 1)).days


def build_requests(con: duckdb.DuckDBPyConnection, lake: Lake, calendar: Calendar, cohorts: list[date],
                   gap_minutes: float) -> dict[date, int]:
    """Write ``continuation_requests`` for each cohort; return the row counts."""
    dts = cohort_days_dts(calendar, cohorts, "observation")
    impressions = require((lake.raw_day("impression_data", calendar.day(d)) for d in dts), "continuation_requests")
    con.execute(REQUESTS_SQL, {
        "cohort_paths": cohort_paths(lake, "cohort_users", cohorts, "continuation_requests"),
        "impression_paths": literal_paths(impressions),
        "gap_ms": int(gap_minutes * 60_000),
        "first_epoch_day": _first_epoch_day(calendar),
    })
    written = write_partitions(con, "_continuation_requests", "cohort_day",
                               {c: lake.cohort("continuation_requests", c) for c in cohorts},
                               "user_id, request_ms")
    con.execute("DROP TABLE _continuation_requests")
    return written


def build_examples(con: duckdb.DuckDBPyConnection, lake: Lake, cohorts: list[date],
                   sampling: ExampleSampling) -> dict[date, int]:
    """Write ``continuation_examples`` (the per-user sample of uncensored requests, with the split)."""
    con.execute(EXAMPLES_SQL, {
        "request_paths": cohort_paths(lake, "continuation_requests", cohorts, "continuation_examples"),
        "split_paths": cohort_paths(lake, "user_splits", cohorts, "continuation_examples"),
        "cap": sampling.max_requests_per_user,
        "seed": str(sampling.seed),
    })
    written = write_partitions(con, "_continuation_examples", "cohort_day",
                               {c: lake.cohort("continuation_examples", c) for c in cohorts}, "user_id, request_ms")
    con.execute("DROP TABLE _continuation_examples")
    return written


@dataclass(frozen=True)
class ExampleChecks:
    """Violations found by recounting the examples from their inputs; every count is zero when they hold."""

    over_cap: int  # users whose number of examples is not min(cap, their uncensored requests)
    future_inputs: int  # examples whose recounted prefix features differ from the stored ones
    unmonotone: int  # examples where a longer horizon holds and a shorter one does not
    label_mismatches: int  # examples whose labels disagree with the sessions table's session end, or censored ones

    @property
    def passed(self) -> bool:
        return self.over_cap == self.future_inputs == self.unmonotone == self.label_mismatches == 0


# The prefix features recounted from raw impressions with plain joins and time filters (no window function):
# cards at or before the request in its session, clicks and actions strictly before it in its session, and
# the cards and clicks of the user's window before the session started.
_RECOUNT_SQL = """
WITH e AS (SELECT * FROM read_parquet($examples, hive_partitioning = false)),
u AS (SELECT user_id, first_dt, observation_end_dt FROM read_parquet($users, hive_partitioning = false)),
i AS (
    SELECT i.user_id, i.impress_time_ms AS t, i.is_click::INTEGER AS click,
           (i.is_like OR i.is_share OR i.is_comment OR i.is_view_comment OR i.is_into_homepage)::INTEGER AS action
    FROM read_parquet($impressions, hive_partitioning = false) i JOIN u
      ON i.user_id = u.user_id AND i.dt BETWEEN u.first_dt AND u.observation_end_dt
),
recount AS (
    SELECT e.user_id, e.request_ms,
           count_if(i.t >= e.session_start_ms AND i.t <= e.request_ms) AS cards_so_far,
           coalesce(sum(i.click) FILTER (WHERE i.t >= e.session_start_ms AND i.t < e.request_ms), 0) AS clicks_so_far,
           coalesce(sum(i.action) FILTER (WHERE i.t >= e.session_start_ms AND i.t < e.request_ms), 0) AS actions_so_far,
           count_if(i.t < e.session_start_ms) AS prior_cards,
           coalesce(sum(i.click) FILTER (WHERE i.t < e.session_start_ms), 0) AS prior_clicks
    FROM e JOIN i ON i.user_id = e.user_id AND i.t <= e.request_ms
    GROUP BY e.user_id, e.request_ms
)
SELECT count(*) FROM e LEFT JOIN recount c USING (user_id, request_ms)
WHERE c.cards_so_far IS DISTINCT FROM e.cards_so_far OR c.clicks_so_far IS DISTINCT FROM e.clicks_so_far
   OR c.actions_so_far IS DISTINCT FROM e.actions_so_far OR c.prior_cards IS DISTINCT FROM e.prior_cards
   OR c.prior_clicks IS DISTINCT FROM e.prior_clicks
"""


def check_examples(con: duckdb.DuckDBPyConnection, lake: Lake, calendar: Calendar, cohorts: list[date],
                   sampling: ExampleSampling) -> ExampleChecks:
    """Recount the written examples from the requests, the raw impressions and the ``sessions`` table."""
    dts = cohort_days_dts(calendar, cohorts, "observation")
    params = {
        "examples": cohort_paths(lake, "continuation_examples", cohorts, "continuation check"),
        "requests": cohort_paths(lake, "continuation_requests", cohorts, "continuation check"),
        "users": cohort_paths(lake, "cohort_users", cohorts, "continuation check"),
        "sessions": cohort_paths(lake, "sessions", cohorts, "continuation check"),
        "impressions": literal_paths(lake.raw_day("impression_data", calendar.day(d)) for d in dts),
        "cap": sampling.max_requests_per_user,
    }

    def one(sql: str) -> int:
        return int(con.execute(sql, used_params(sql, params)).fetchone()[0])

    over_cap = one("""
        SELECT count(*) FROM (SELECT user_id, count(*) FILTER (WHERE NOT censored) AS eligible
                              FROM read_parquet($requests, hive_partitioning = false) GROUP BY user_id) r
        LEFT JOIN (SELECT user_id, count(*) AS n FROM read_parquet($examples, hive_partitioning = false)
                   GROUP BY user_id) e USING (user_id)
        WHERE coalesce(e.n, 0) <> least(r.eligible, $cap)""")
    unmonotone = unmonotone_labels(con, params["examples"])
    against_sessions = " OR ".join(
        f"e.{label_column(h)} IS DISTINCT FROM (s.last_request_ms - e.request_ms >= {h * 60_000})" for h in HORIZONS_MIN)
    mismatches = one(f"""
        SELECT count(*) FROM read_parquet($examples, hive_partitioning = false) e
        LEFT JOIN read_parquet($sessions, hive_partitioning = false) s USING (user_id, global_session_idx)
        WHERE s.user_id IS NULL OR e.censored OR e.request_ms NOT BETWEEN s.start_ms AND s.last_request_ms
           OR {against_sessions}""")
    return ExampleChecks(over_cap, one(_RECOUNT_SQL), unmonotone, mismatches)


def sessions_disagreeing(con: duckdb.DuckDBPyConnection, lake: Lake, cohorts: list[date]) -> tuple[int, int]:
    """(sessions of ``sessions`` whose bounds or impressions differ from the requests', sessions compared):
    both tables must split the same requests at the same gaps."""
    row = con.execute("""
        WITH r AS (SELECT user_id, global_session_idx, min(session_start_ms) AS start_ms,
                          max(session_end_ms) AS end_ms, sum(cards) AS cards, count(*) AS requests
                   FROM read_parquet($r, hive_partitioning = false) GROUP BY user_id, global_session_idx)
        SELECT coalesce(count_if(r.user_id IS NULL OR s.user_id IS NULL OR r.start_ms <> s.start_ms
                                 OR r.end_ms <> s.last_request_ms OR r.cards <> s.total_impressions
                                 OR r.requests <> s.feed_requests), 0), count(*)
        FROM r FULL JOIN read_parquet($s, hive_partitioning = false) s USING (user_id, global_session_idx)""",
        {"r": cohort_paths(lake, "continuation_requests", cohorts, "continuation check"),
         "s": cohort_paths(lake, "sessions", cohorts, "continuation check")}).fetchone()
    return int(row[0]), int(row[1])


def unmonotone_labels(con: duckdb.DuckDBPyConnection, paths: list[str]) -> int:
    """Rows where a session goes on for a longer horizon but not for a shorter one (impossible by definition)."""
    pairs = zip(LABEL_COLUMNS, LABEL_COLUMNS[1:], strict=False)
    nested = " OR ".join(f"({longer} AND NOT {shorter})" for shorter, longer in pairs)
    return int(con.execute(f"SELECT coalesce(count_if({nested}), 0) FROM read_parquet($f, hive_partitioning = false)",
                           {"f": paths}).fetchone()[0])


def label_shares_sql(group_by: str) -> str:
    """Examples and positives per horizon by ``group_by`` (a column or a constant), over ``$f``."""
    shares = ", ".join(f"avg({c}::INTEGER) AS share_{c.removeprefix('continues_')}" for c in LABEL_COLUMNS)
    return (f"SELECT {group_by} AS rows_of, count(*) AS requests, count(DISTINCT user_id) AS users, {shares} "
            f"FROM read_parquet($f, hive_partitioning = false) GROUP BY ALL ORDER BY 1")
