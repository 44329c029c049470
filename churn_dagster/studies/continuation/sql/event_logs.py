"""Session continuation on an event log: at an event of a session, will the session go on for another 10, 20
or 30 minutes? DuckDB SQL over an instance's canonical events.

The Zooniverse study asks it at each request of a working session; here every event is such a moment.

- **Sessions**: the log's ``session_id`` where it has one, else a new session after 30 minutes without an
  event (the rule of the churn features), over the events from ``windows.start`` on.
- **Features**, all known at the event: its position in the session, minutes since the session began and
  since the previous event, the session's events of each type and value so far, the hour and weekday; and
  the user's history before the session: earlier sessions, their mean length, events, minutes since the last
  one ended.
- **Labels**: ``continues_<h>min`` = the session's last event is at least ``h`` minutes after this one.
- **Censoring**: an event is an example only if the log goes on for the longest horizon plus the session gap
  after it, so that every label is known.
- **Steps** (the LSTM's, :func:`steps_sql`): every event of the sessions that hold an example, numbered per user
  by session start and then time (``step_no``), so a session's events are contiguous even where a platform's
  sessions interleave and an example's prefix is the slice of its session up to it.
- **Sampling**: at most ``per_user`` examples a user, chosen by a seeded hash of the event (not its order), so
  heavy users do not outweigh the others; the split is the seeded hash of the user id every study uses.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from churn_dagster.stages.cohorts.sql.labels import split_sql
from churn_dagster.stages.events.sql.cohorts import SESSION_GAP_MS, session_key_sql, type_columns
from churn_dagster.stages.events.sql.times import sql_text
from churn_dagster.storage.duck import literal_path
from churn_dagster.studies.continuation.sql.examples import HORIZONS_MIN, label_column

MINUTE_MS = 60_000
# Counts and durations: the models read them as log(1 + x).
LOG_FEATURES = ("event_idx", "elapsed_min", "gap_prev_min", "value_so_far", "prior_sessions", "prior_events",
                "prior_mean_session_min", "minutes_since_prev_session")
PERIODIC_FEATURES = ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")


def feature_columns(types: list[str], has_value: bool) -> tuple[list[str], frozenset[str]]:
    """The examples' feature columns and which of them are read as log(1 + x)."""
    counts = [f"n_{stem}_so_far" for stem in type_columns(types).values()]
    logged = [c for c in LOG_FEATURES if has_value or c != "value_so_far"]
    return [*logged, *counts, *PERIODIC_FEATURES], frozenset([*logged, *counts])


def prefix_layout(types: list[str], has_value: bool):
    """The LSTM's prefix layout on an event log: one step per event of the session so far (its gap, minutes
    since the session began, its type, its value on a signed log scale, its hour), the user's history and
    the calendar beside them; steps ordered and examples located by ``step_no``."""
    from churn_dagster.studies.continuation.ml.data import PrefixLayout

    steps = ("step_gap_min", "elapsed_min", *(f"is_{stem}" for stem in type_columns(types).values()),
             *(("step_value",) if has_value else ()), "hour_sin", "hour_cos")
    static = ("event_idx", "weekday_sin", "weekday_cos", "prior_sessions", "prior_events", "prior_mean_session_min",
              "minutes_since_prev_session", *(("value_so_far",) if has_value else ()))
    logged = frozenset({"step_gap_min", "elapsed_min", *LOG_FEATURES} - {"gap_prev_min"})
    return PrefixLayout(steps, static, logged, key="step_no", position="event_idx")


EVENTS_TABLE = "_continuation_events"


def events_table_sql(events: Path, start: date, types: list[str], session_id: bool, has_value: bool,
                     per_user: int) -> str:
    """``EVENTS_TABLE``: every event from ``start`` with its features, steps and session end, and ``sampled``
    where it is one of its user's drawn examples; uses the split parameter ``$seed``. :func:`examples_sql`
    and :func:`steps_sql` read it, so the log is read and windowed once for both."""
    key = session_key_sql(session_id)
    so_far = "OVER (PARTITION BY user_id, session_key ORDER BY event_ms, file, line)"
    counts = "".join(f", count_if(event_type = {sql_text(t)}) {so_far} AS n_{stem}_so_far"
                     for t, stem in type_columns(types).items())
    kinds = "".join(f", (k.event_type = {sql_text(t)})::INTEGER AS is_{stem}" for t, stem in type_columns(types).items())
    value = (f", coalesce(sum(value) {so_far}, 0) AS value_so_far, "
             "sign(coalesce(k.value, 0)) * ln(1 + abs(coalesce(k.value, 0))) AS step_value" if has_value else "")
    margin = (max(HORIZONS_MIN) * MINUTE_MS) + SESSION_GAP_MS
    return f"""
        CREATE OR REPLACE TEMP TABLE {EVENTS_TABLE} AS
        WITH e AS (
            SELECT user_id, event_ms, event_type, value, session_id, local_day, local_hour, file, line,
                   event_ms - lag(event_ms) OVER (PARTITION BY user_id ORDER BY event_ms, file, line) AS gap_ms
            FROM read_parquet({sql_text(literal_path(events))})
            WHERE local_day >= DATE '{start}'),
        keyed AS (SELECT *, {key} AS session_key FROM e),
        sessions AS (
            SELECT user_id, session_key, min(event_ms) AS start_ms, max(event_ms) AS end_ms, count(*) AS n
            FROM keyed GROUP BY user_id, session_key),
        history AS (
            SELECT *, count(*) OVER before AS prior_sessions, coalesce(sum(n) OVER before, 0) AS prior_events,
                   avg((end_ms - start_ms) / {MINUTE_MS}) OVER before AS prior_mean_session_min,
                   (start_ms - max(end_ms) OVER before) / {MINUTE_MS} AS minutes_since_prev_session,
                   row_number() OVER (PARTITION BY user_id ORDER BY start_ms, session_key) AS global_session_idx
            FROM sessions
            WINDOW before AS (PARTITION BY user_id ORDER BY start_ms, session_key
                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)),
        events AS (
            SELECT k.user_id, k.event_ms, k.line, k.file, k.session_key, h.end_ms AS session_end_ms,
                   h.global_session_idx,
                   row_number() OVER (PARTITION BY k.user_id ORDER BY h.start_ms, k.session_key, k.event_ms, k.file,
                                      k.line) AS step_no,
                   row_number() {so_far} AS event_idx,
                   (k.event_ms - h.start_ms) / {MINUTE_MS} AS elapsed_min,
                   (k.event_ms - lag(k.event_ms) {so_far}) / {MINUTE_MS} AS gap_prev_min{value}{counts}{kinds},
                   h.prior_sessions, h.prior_events, h.prior_mean_session_min, h.minutes_since_prev_session,
                   sin(2 * pi() * k.local_hour / 24) AS hour_sin, cos(2 * pi() * k.local_hour / 24) AS hour_cos,
                   sin(2 * pi() * isodow(k.local_day) / 7) AS weekday_sin,
                   cos(2 * pi() * isodow(k.local_day) / 7) AS weekday_cos
            FROM keyed k JOIN history h USING (user_id, session_key)),
        known AS (SELECT *, event_ms + {margin} <= (SELECT max(event_ms) FROM e) AS labels_known FROM events)
        SELECT * EXCLUDE (labels_known),
               labels_known AND row_number() OVER (
                   PARTITION BY user_id, labels_known
                   ORDER BY md5(user_id || ':' || event_ms || ':' || line || ':' || $seed), file, line) <= {int(per_user)}
                   AS sampled
        FROM known"""


def examples_sql(types: list[str], has_value: bool) -> str:
    """The examples of ``EVENTS_TABLE``, ordered by user and step; uses the split parameters ``$seed``,
    ``$train``, ``$validation``."""
    kinds = ", ".join(f"is_{stem}" for stem in type_columns(types).values())
    step = ", step_value" if has_value else ""
    return f"""
        SELECT user_id, event_ms AS request_ms, {split_sql("user_id")} AS split, * EXCLUDE (user_id, event_ms,
               session_end_ms, sampled, file, line, session_key{', ' + kinds if kinds else ''}{step}),
               {", ".join(f"(session_end_ms - event_ms >= {h * MINUTE_MS}) AS {label_column(h)}" for h in HORIZONS_MIN)}
        FROM {EVENTS_TABLE} WHERE sampled
        ORDER BY user_id, step_no"""


def steps_sql(types: list[str], has_value: bool) -> str:
    """Every event of ``EVENTS_TABLE``'s sessions that hold an example, as the LSTM's steps
    (:func:`prefix_layout`), ordered by user and step."""
    layout = prefix_layout(types, has_value)
    return f"""
        SELECT user_id, step_no, global_session_idx, event_idx,
               {", ".join(f"coalesce(gap_prev_min, 0) AS {c}" if c == "step_gap_min" else c for c in layout.steps)}
        FROM {EVENTS_TABLE}
        SEMI JOIN (SELECT DISTINCT user_id, session_key FROM {EVENTS_TABLE} WHERE sampled) s USING (user_id, session_key)
        ORDER BY user_id, step_no"""
