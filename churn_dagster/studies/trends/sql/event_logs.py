"""The DIGMN trend study on an event log (``studies: [..., trends]``): the labels and the first-period inputs of
every new user whose two trend periods lie inside the log, in DuckDB SQL over an instance's canonical events.

The NCM tables (:mod:`churn_dagster.studies.trends.sql.trends`, ``session_events``) read impressions with
action flags; an event log has events with a type, so the vocabulary of intent mining is the log's own event
types (the most frequent ``MAX_TYPE_FEATURES`` of them, the rest counted as ``other``).

- **Users and periods**: a user's first event (any type) starts period 1, the first ``first_days`` days; period
  2 is the ``second_days`` after it. A user is in the study when the first event is on or after
  ``windows.start`` and period 2 ends by the log's last day. The cohort is the churn study's (day or week of
  the first event); it is what the median filter is computed over.
- **Labels** (as on NCM, from activity events, ``activity_types``, default every type): ``day_trend`` 0/1/2
  when active days per day fall, hold or rise from period 1 to 2; ``session_trend`` 1 when sessions per day
  fall. Sessions start where the log's session id or the 30-minute rule says (:func:`session_key_sql`) and
  count in the period of their first activity event. Compared on integers (``a * P2`` vs ``b * P1``).
- **Median filter**: ``kept_by_filter`` = first-period sessions at least the cohort's median (the paper's task;
  over all the cohort's users, as on NCM: it reads period 1 only and decides who is in the task).
- **Inputs, from period 1 only**: ``macro.parquet``, the churn study's static features of the window (and the
  users table's); ``sessions.parquet``, per session of period 1 (events of period 1 only: a session running
  into period 2 ends with its last period-1 event) its event-type counts and context (day, hour, weekday,
  minutes, gap to the previous session; -1 for the first); ``daily.parquet``, per user and day of period 1
  (zero-filled) the event-type counts.

Every file is sorted on its keys and its floats rounded, so a re-run writes the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from churn_dagster.stages.cohorts.sql.labels import split_sql
from churn_dagster.stages.events.sql.cohorts import Windows, cohort_day_sql, in_list, session_key_sql, type_columns
from churn_dagster.stages.events.sql.mapping import EventMapping
from churn_dagster.stages.events.sql.times import sql_text

OTHER = "other"


@dataclass(frozen=True)
class TrendWindows:
    """The trend periods of an event log, its cohort grain and whether the paper's median filter applies."""

    start: date
    first_days: int
    second_days: int
    grain: str = "day"
    median_filter: bool = True

    def as_observation(self) -> Windows:
        """Period 1 as the churn study's observation window, so its feature SQL reads period 1 only."""
        return Windows(self.start, self.first_days, self.second_days, self.grain)


def event_columns(types: list[str], with_other: bool) -> dict[str, str | None]:
    """The vocabulary: a count column per event type (``n_<stem>``), and ``n_other`` (None: every type not
    named) when the log has more types than get their own."""
    found: dict[str, str | None] = {f"n_{stem}": t for t, stem in type_columns(types).items()}
    if with_other:
        found[f"n_{OTHER}" if f"n_{OTHER}" not in found else f"n_{OTHER}_types"] = None
    return found


def _count_sql(columns: dict[str, str | None]) -> str:
    named = [t for t in columns.values() if t is not None]
    return ", ".join(
        f"count(*) FILTER (WHERE {'event_type = ' + sql_text(t) if t is not None else 'NOT ' + in_list('event_type', named)})"
        f"::BIGINT AS {c}" for c, t in columns.items())


def members_sql(w: TrendWindows, last_day: date) -> str:
    """``_members`` (user_id, first_day, cohort_day): the new users whose two periods end by ``last_day``."""
    return f"""
        CREATE OR REPLACE TEMP TABLE _members AS
        SELECT user_id, first_day, {cohort_day_sql(w.as_observation(), "first_day")} AS cohort_day
        FROM (SELECT user_id, min(local_day) AS first_day FROM _events GROUP BY user_id)
        WHERE first_day >= DATE '{w.start.isoformat()}'
          AND first_day + {w.first_days + w.second_days - 1} <= DATE '{last_day.isoformat()}'"""


def labels_sql(w: TrendWindows, mapping: EventMapping) -> str:
    """One row per member: period counts, the two trends, the median filter and the split (``$seed``, ...)."""
    p1, p2 = w.first_days, w.second_days
    key = session_key_sql(mapping.session_id is not None)
    return f"""
        WITH span AS (
            SELECT e.user_id, e.event_ms, e.file, e.line, e.session_id, datediff('day', m.first_day, e.local_day) AS d,
                   event_ms - lag(event_ms) OVER (PARTITION BY e.user_id ORDER BY event_ms, e.file, e.line) AS gap_ms
            FROM _events e JOIN _members m USING (user_id)
            WHERE e.local_day < m.first_day + {p1 + p2} AND {in_list('e.event_type', mapping.activity_types)}),
        keyed AS (SELECT user_id, d, {key} AS session_key FROM span),
        sessions AS (SELECT user_id, min(d) AS d FROM keyed GROUP BY user_id, session_key),
        days AS (SELECT user_id, count(DISTINCT d) FILTER (WHERE d < {p1}) AS a1,
                        count(DISTINCT d) FILTER (WHERE d >= {p1}) AS a2 FROM span GROUP BY user_id),
        starts AS (SELECT user_id, count(*) FILTER (WHERE d < {p1}) AS s1, count(*) FILTER (WHERE d >= {p1}) AS s2
                   FROM sessions GROUP BY user_id),
        counted AS (
            SELECT m.user_id, m.cohort_day, m.first_day, coalesce(a1, 0)::BIGINT AS first_active_days,
                   coalesce(a2, 0)::BIGINT AS second_active_days, coalesce(s1, 0)::BIGINT AS first_sessions,
                   coalesce(s2, 0)::BIGINT AS second_sessions
            FROM _members m LEFT JOIN days USING (user_id) LEFT JOIN starts USING (user_id))
        SELECT *, CASE WHEN {str(w.median_filter).upper()} THEN first_sessions >= first_sessions_median ELSE TRUE END
                  AS kept_by_filter
        FROM (SELECT *, {split_sql('user_id')} AS split,
                     CASE WHEN first_active_days * {p2} > second_active_days * {p1} THEN 0
                          WHEN first_active_days * {p2} = second_active_days * {p1} THEN 1 ELSE 2 END AS day_trend,
                     CASE WHEN first_sessions * {p2} > second_sessions * {p1} THEN 1 ELSE 0 END AS session_trend,
                     quantile_cont(first_sessions::DOUBLE, 0.5) OVER (PARTITION BY cohort_day) AS first_sessions_median
              FROM counted)"""


def sessions_sql(columns: dict[str, str | None]) -> str:
    """One row per session of period 1 (over ``_observed``, the churn features' view of period 1): its key
    ``global_session_idx`` (order of start), context and event-type counts."""
    return f"""
        WITH s AS (
            SELECT user_id, any_value(cohort_day) AS cohort_day, session_no, min(event_ms) AS start_ms,
                   max(event_ms) AS end_ms, min(d) + 1 AS day_num, arg_min(local_hour, event_ms) AS hour_of_day,
                   isodow(arg_min(local_day, event_ms)) - 1 AS weekday, {_count_sql(columns)}
            FROM _observed GROUP BY user_id, session_no),
        ordered AS (SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY start_ms, session_no) AS global_session_idx,
                           start_ms - lag(end_ms) OVER (PARTITION BY user_id ORDER BY start_ms, session_no) AS gap_ms
                    FROM s)
        SELECT user_id, cohort_day, global_session_idx, day_num, hour_of_day, weekday,
               (end_ms - start_ms) / 60000.0 AS duration_min,
               CASE WHEN gap_ms IS NULL THEN -1 ELSE greatest(gap_ms, 0) / 60000.0 END AS gap_min,
               {', '.join(columns)}
        FROM ordered ORDER BY user_id, global_session_idx"""


def daily_sql(columns: dict[str, str | None], first_days: int) -> str:
    """One row per member and day of period 1 (``day_num`` 1..first_days, zero-filled): event-type counts."""
    return f"""
        WITH counts AS (SELECT user_id, d + 1 AS day_num, {_count_sql(columns)} FROM _observed GROUP BY user_id, d)
        SELECT m.user_id, m.cohort_day, g.day_num::INTEGER AS day_num,
               {', '.join(f'coalesce(c.{c}, 0)::BIGINT AS {c}' for c in columns)}
        FROM _members m CROSS JOIN range(1, {first_days + 1}) g(day_num)
        LEFT JOIN counts c ON c.user_id = m.user_id AND c.day_num = g.day_num
        ORDER BY m.user_id, day_num"""
