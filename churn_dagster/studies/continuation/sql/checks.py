"""Checks of the session-continuation tables (:mod:`churn_dagster.studies.continuation.sql.examples`), each a recount from
their inputs by another route than the one that built them: plain joins and time filters instead of window
functions, the ``sessions`` table's bounds instead of the requests' own, calendar dates instead of epoch-day
arithmetic. Every count is a number of violations; zero when the tables hold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.domain.calendar import Calendar
from churn_dagster.stages.cohorts.sql.cohorts import cohort_paths
from churn_dagster.stages.features.sql.window import window_paths
from churn_dagster.storage.duck import used_params
from churn_dagster.storage.lake import Lake
from churn_dagster.studies.continuation.sql.examples import (
    FIRST_SWIPE_MS,
    HORIZONS_MIN,
    LABEL_COLUMNS,
    ExampleSampling,
    censoring_margin_ms,
    label_column,
)


@dataclass(frozen=True)
class ExampleChecks:
    """Violations found by recounting the examples from their inputs; every count is zero when they hold."""

    over_cap: int  # users whose number of examples is not min(cap, their uncensored requests)
    future_inputs: int  # examples whose recounted prefix features differ from the stored ones
    unmonotone: int  # examples where a longer horizon holds and a shorter one does not
    label_mismatches: int  # examples whose labels disagree with the sessions table's session end, or censored ones
    too_late: int  # examples less than the longest horizon plus the gap before their window's end

    @property
    def passed(self) -> bool:
        return self.over_cap == self.future_inputs == self.unmonotone == self.label_mismatches == self.too_late == 0


# The prefix features recounted from the window's impressions with plain joins and time filters (no window function):
# cards at or before the request in its session; clicks on the session's cards shown before the request whose
# first swipe-down entry was logged before it; the cards of the user's window before the session started, and
# the clicks on them whose first swipe-down entry was logged before the session started. The impressions are
# counted per user, request time and first swipe-down time first (the filters read nothing else) and the
# users are numbered: every example meets each earlier request once instead of each earlier card, on an
# integer key (2.5 s instead of 3.9 s for cohorts dt 1-7 of a 521,400-user twin). An example whose user is
# not a member finds nothing to recount and is counted.
_RECOUNT_SQL = f"""
WITH u AS (SELECT user_id, row_number() OVER (ORDER BY user_id) AS user_no, first_dt, observation_end_dt
           FROM read_parquet($users, hive_partitioning = false)),
e AS (SELECT u.user_no, x.* FROM read_parquet($examples, hive_partitioning = false) x LEFT JOIN u USING (user_id)),
i AS (
    SELECT u.user_no, i.impress_time_ms AS t, {FIRST_SWIPE_MS} AS first_swipe_ms, count(*) AS cards
    FROM read_parquet($impressions, hive_partitioning = false) i JOIN u
      ON i.user_id = u.user_id AND i.dt BETWEEN u.first_dt AND u.observation_end_dt
    GROUP BY ALL
),
recount AS (
    SELECT e.user_no, e.request_ms,
           coalesce(sum(i.cards) FILTER (WHERE i.t >= e.session_start_ms AND i.t <= e.request_ms), 0) AS cards_so_far,
           coalesce(sum(i.cards) FILTER (WHERE i.t >= e.session_start_ms AND i.t < e.request_ms
                                         AND i.first_swipe_ms < e.request_ms), 0) AS clicks_so_far,
           coalesce(sum(i.cards) FILTER (WHERE i.t < e.session_start_ms), 0) AS prior_cards,
           coalesce(sum(i.cards) FILTER (WHERE i.t < e.session_start_ms AND i.first_swipe_ms < e.session_start_ms), 0)
               AS prior_clicks
    FROM e JOIN i ON i.user_no = e.user_no AND i.t <= e.request_ms
    GROUP BY e.user_no, e.request_ms
)
SELECT count(*) FROM e LEFT JOIN recount c USING (user_no, request_ms)
WHERE c.cards_so_far IS DISTINCT FROM e.cards_so_far OR c.clicks_so_far IS DISTINCT FROM e.clicks_so_far
   OR c.prior_cards IS DISTINCT FROM e.prior_cards OR c.prior_clicks IS DISTINCT FROM e.prior_clicks
"""

# Examples whose request is less than $margin_ms before local midnight of their user's first label day.
_TOO_LATE_SQL = f"""
SELECT count(*) FROM read_parquet($examples, hive_partitioning = false) e
JOIN read_parquet($users, hive_partitioning = false) u USING (user_id)
WHERE e.request_ms + $margin_ms
      > epoch_ms(($first_day::DATE + (u.label_start_dt - 1)::INTEGER)::TIMESTAMP)
        - {fmt.SHANGHAI_UTC_OFFSET_SECONDS * 1000}
"""


def check_examples(con: duckdb.DuckDBPyConnection, lake: Lake, calendar: Calendar, cohorts: list[date],
                   sampling: ExampleSampling, gap_minutes: float) -> ExampleChecks:
    """Recount the written examples from the requests, the window's impressions and the ``sessions`` table."""
    params = {
        "examples": cohort_paths(lake, "continuation_examples", cohorts, "continuation check"),
        "requests": cohort_paths(lake, "continuation_requests", cohorts, "continuation check"),
        "users": cohort_paths(lake, "cohort_users", cohorts, "continuation check"),
        "sessions": cohort_paths(lake, "sessions", cohorts, "continuation check"),
        "impressions": window_paths(lake, cohorts, "continuation check"),
        "cap": sampling.max_requests_per_user,
        "margin_ms": censoring_margin_ms(gap_minutes),
        "first_day": calendar.first_day.isoformat(),
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
    return ExampleChecks(over_cap, one(_RECOUNT_SQL), unmonotone, mismatches, one(_TOO_LATE_SQL))


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
