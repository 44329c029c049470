"""Session continuation (the Zooniverse task): at a feed request, will the session go on for 10, 20, 30 more minutes?

Two tables per cohort, both over the observation window of the cohort's users, in SQL over their
``window_impressions`` (the raw rows of the window):

- ``continuation_requests``: one row per **feed request**, i.e. per user and ``impressTime``. The log records
  cards, not requests, but every card a request returned carries the request's whole-second timestamp, so the
  cards sharing a user and an ``impressTime`` are one request (the ``sessions`` table groups them the same way
  and sessionises requests with the same gap rule, :func:`~churn_dagster.stages.features.sql.sessions.session_numbering_ctes`).
- ``continuation_examples``: the requests the models learn from, at most ``max_requests_per_user`` per user,
  with the user's split from ``user_splits``.

**Labels.** A session ends at its last request (``session_end_ms``; the view time of its last card is not
counted, since the log says when a card was opened but not when the user stopped). A request at ``t``
*continues for h minutes* iff ``session_end_ms - t >= h`` minutes: exactly h counts. The next session never
counts, however soon it starts (it is a new session because the gap was 30 minutes or more).

**What the log dates.** It has two clocks: ``impressTime``, the second of the request that returned a card,
and the ``logtime`` of each entry of a card's swipe-down list (the cards the user swiped through after opening
it). A click, like, share, comment, comment view or homepage visit has no time of its own: an action on a card
shown at ``t_i`` happens at some moment after ``t_i``, possibly after later requests (in the real log's
10,000-row head, 95 of the 134 opened cards with a swipe-down list were first swiped after the user's next
request of the same session). So a feature at a request at ``t`` counts

- a **card** from its request on (``cards``, ``max_position``, ``cards_so_far``): the log stamps it with ``t``;
- a **click** only when the log proves it happened before ``t``: the card was shown before ``t`` and carries a
  swipe-down entry logged before ``t`` (nothing is swiped under a card before it is opened), i.e. the click's
  *proof time* ``greatest(t_i, first logtime) < t``. Strictly: an entry logged in the request's own second does
  not prove the click came first. A click without a swipe-down list is never counted, however long ago its
  card was shown; nothing bounds when it happened;
- **no other action**: nothing in the log dates a like, share, comment, comment view or homepage visit (the
  card may be returned to after its swipe-down list), so they are not features at all.

**Features**, all known at the request: its time (elapsed in the session, gap since the previous request, local
hour, weekday, day of the window), the cards it returned (count, deepest position) and the requests and cards of
the session so far, the proven clicks on the session's cards (``clicks_so_far``; of the previous request's cards,
``prev_request_clicks``), minutes since the request that showed the latest proven-clicked card, and the user's
sessions before this one (their requests and cards, their clicks proven before this session's first request).
Every window frame that feeds a feature ends at the current row or before it; the examples'
``features_use_only_the_past`` check recounts them from the window's impressions without window functions.

**Censoring, blind to the outcome.** The window ends at local midnight before the user's first label day
(``W``); nothing after it is read. Whether a session goes on from ``t`` for h minutes depends on its requests up
to the first one at or after ``t + h``, which comes less than one gap after an earlier one, so before
``t + h + gap``. A request is therefore kept (``censored`` false) iff ``W - t >= 30 min + gap`` (the longest
horizon): then every request its three labels depend on lies in the window, whichever way its session went,
and all horizons are learnt and compared on the same requests. When the session ended plays no part in it.

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
from churn_dagster.stages.cohorts.sql.cohorts import cohort_paths
from churn_dagster.stages.features.sql.sessions import session_numbering_ctes
from churn_dagster.stages.features.sql.window import window_paths
from churn_dagster.storage.duck import write_partitions
from churn_dagster.storage.lake import Lake

HORIZONS_MIN: tuple[int, ...] = (10, 20, 30)


def label_column(horizon_min: int) -> str:
    return f"continues_{horizon_min}min"


LABEL_COLUMNS = tuple(label_column(h) for h in HORIZONS_MIN)


def censoring_margin_ms(gap_minutes: float) -> int:
    """How long before the window's end a request must lie to be kept: the longest horizon plus the gap."""
    return max(HORIZONS_MIN) * 60_000 + int(gap_minutes * 60_000)


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
# The first swipe-down entry's log time of a clicked card (NULL without a non-empty list): the click came before.
FIRST_SWIPE_MS = "CASE WHEN i.is_click THEN list_min(list_transform(i.detail_items, lambda d: d.logtime_ms)) END"

REQUESTS_SQL = f"""
CREATE OR REPLACE TEMP TABLE _continuation_requests AS
WITH users AS (
    SELECT user_id, row_number() OVER (ORDER BY user_id) AS user_no, cohort_day, first_dt, observation_end_dt,
           label_start_dt
    FROM read_parquet($cohort_paths, hive_partitioning = false)
),
cards AS (
    SELECT u.user_no, u.cohort_day, u.first_dt, u.label_start_dt, i.impress_time_ms AS t, i.impress_position,
           {FIRST_SWIPE_MS} AS first_swipe_ms
    FROM read_parquet($impression_paths, hive_partitioning = false) i JOIN users u
      ON i.user_id = u.user_id AND i.dt BETWEEN u.first_dt AND u.observation_end_dt
),
requests AS (
    SELECT user_no, any_value(cohort_day) AS cohort_day, any_value(first_dt) AS first_dt,
           any_value(label_start_dt) AS label_start_dt, t, count(*) AS cards, max(impress_position) AS max_position
    FROM cards GROUP BY user_no, t
),
{session_numbering_ctes('requests', 'user_no')}
proven_clicks AS (  -- one row per click the log dates: it had happened by proven_ms; its card's request and session
    SELECT c.user_no, n.global_session_idx, c.t AS card_ms, greatest(c.t, c.first_swipe_ms) AS proven_ms
    FROM cards c JOIN numbered n USING (user_no, t)
    WHERE c.first_swipe_ms IS NOT NULL
),
in_session AS (
    SELECT *,
           row_number() OVER s AS request_idx,
           min(t) OVER whole AS session_start_ms,
           max(t) OVER whole AS session_end_ms,  -- the future: for the labels only
           lag(t) OVER s AS prev_ms,
           sum(cards) OVER (s ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cards_so_far
    FROM numbered
    WINDOW s AS (PARTITION BY user_no, global_session_idx ORDER BY t),
           whole AS (PARTITION BY user_no, global_session_idx)
),
known_clicks AS (  -- per request: the clicks on its session's cards proven before it
    SELECT r.user_no, r.t, count(*) AS clicks_so_far, count_if(p.card_ms = r.prev_ms) AS prev_request_clicks,
           max(p.card_ms) AS last_click_ms
    FROM in_session r JOIN proven_clicks p
      ON p.user_no = r.user_no AND p.global_session_idx = r.global_session_idx AND p.proven_ms < r.t
    GROUP BY r.user_no, r.t
),
per_session AS (
    SELECT user_no, global_session_idx, min(t) AS start_ms, max(t) AS end_ms, count(*) AS requests,
           sum(cards) AS cards
    FROM numbered GROUP BY user_no, global_session_idx
),
prior_known_clicks AS (  -- per session: the clicks on earlier sessions' cards proven before it started
    SELECT s.user_no, s.global_session_idx, count(*) AS prior_clicks
    FROM per_session s JOIN proven_clicks p
      ON p.user_no = s.user_no AND p.global_session_idx < s.global_session_idx AND p.proven_ms < s.start_ms
    GROUP BY s.user_no, s.global_session_idx
),
history AS (  -- the user's sessions before this one: every frame ends one session back
    SELECT user_no, global_session_idx,
           count(*) OVER before AS prior_sessions,
           coalesce(sum(requests) OVER before, 0) AS prior_requests,
           coalesce(sum(cards) OVER before, 0) AS prior_cards,
           coalesce(avg((end_ms - start_ms) / 60000.0) OVER before, 0) AS prior_mean_session_min,
           coalesce(sum((end_ms - start_ms >= 600000)::INTEGER) OVER before, 0) AS prior_sessions_10min,
           (start_ms - lag(end_ms) OVER (PARTITION BY user_no ORDER BY global_session_idx)) / 60000.0
               AS minutes_since_prev_session
    FROM per_session
    WINDOW before AS (PARTITION BY user_no ORDER BY global_session_idx ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
)
SELECT names.user_id, cohort_day, global_session_idx, request_idx, t AS request_ms, session_start_ms, session_end_ms,
       {_WINDOW_END_MS} - t < $margin_ms AS censored,
       (session_end_ms - t) / 60000.0 AS remaining_min,
       {_LABELS},
       (t - session_start_ms) / 60000.0 AS elapsed_min,
       coalesce(t - prev_ms, 0) / 60000.0 AS gap_prev_request_min,
       cards, max_position, cards_so_far, coalesce(clicks_so_far, 0) AS clicks_so_far,
       (t - last_click_ms) / 60000.0 AS minutes_since_last_click,
       coalesce(prev_request_clicks, 0) AS prev_request_clicks,
       sin(2 * pi() * ({_LOCAL_S} % 86400) / 86400.0) AS hour_sin,
       cos(2 * pi() * ({_LOCAL_S} % 86400) / 86400.0) AS hour_cos,
       sin(2 * pi() * (({_LOCAL_S} // 86400 + 3) % 7) / 7.0) AS weekday_sin,
       cos(2 * pi() * (({_LOCAL_S} // 86400 + 3) % 7) / 7.0) AS weekday_cos,
       {_LOCAL_S} // 86400 - $first_epoch_day - first_dt + 2 AS day_num,
       prior_sessions, prior_requests, prior_cards, coalesce(prior_clicks, 0) AS prior_clicks,
       prior_mean_session_min, prior_sessions_10min, minutes_since_prev_session
FROM in_session
JOIN history USING (user_no, global_session_idx)
LEFT JOIN known_clicks USING (user_no, t)
LEFT JOIN prior_known_clicks USING (user_no, global_session_idx)
JOIN (SELECT user_no, user_id FROM users) names USING (user_no)
"""

# The sample is drawn on the requests' key alone and the kept requests' columns are fetched after: ranking
# every request with its 30 columns made the window sort carry them all, for a sample of a fraction of them.
EXAMPLES_SQL = """
CREATE OR REPLACE TEMP TABLE _continuation_examples AS
WITH sample AS (
    SELECT user_id, request_ms, sample_rank
    FROM (
        SELECT user_id, request_ms,
               row_number() OVER (PARTITION BY user_id
                                  ORDER BY md5(user_id || ':' || request_ms || ':' || $seed), request_ms) AS sample_rank
        FROM read_parquet($request_paths, hive_partitioning = false)
        WHERE NOT censored
    )
    WHERE sample_rank <= $cap
)
SELECT r.*, k.sample_rank, s.split
FROM read_parquet($request_paths, hive_partitioning = false) r
JOIN sample k USING (user_id, request_ms)
JOIN (SELECT user_id, split FROM read_parquet($split_paths, hive_partitioning = false)) s USING (user_id)
"""


def _first_epoch_day(calendar: Calendar) -> int:
    return (calendar.first_day - date(1970, 1, 1)).days


def build_requests(con: duckdb.DuckDBPyConnection, lake: Lake, calendar: Calendar, cohorts: list[date],
                   gap_minutes: float) -> dict[date, int]:
    """Write ``continuation_requests`` for each cohort; return the row counts."""
    con.execute(REQUESTS_SQL, {
        "cohort_paths": cohort_paths(lake, "cohort_users", cohorts, "continuation_requests"),
        "impression_paths": window_paths(lake, cohorts, "continuation_requests"),
        "gap_ms": int(gap_minutes * 60_000),
        "margin_ms": censoring_margin_ms(gap_minutes),
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
