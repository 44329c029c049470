"""Each member's observation window as a daily sequence: one step per day, active or not, so the sequence
models see the order and spacing of a user's activity that totals lose.

Per day: the log of one plus the count of each event type and of all events, whether the day was active,
the sessions, the value (its signed log sum and its mean, 0 on a day without one) and the distinct items
where the log has them, the day's position in the window and its weekday (sin/cos).
"""

from __future__ import annotations

from churn_dagster.stages.events.sql.cohorts import type_columns
from churn_dagster.stages.events.sql.mapping import EventMapping
from churn_dagster.stages.events.sql.times import sql_text
from churn_dagster.storage.duck import exact_sum


def step_features(mapping: EventMapping, types: list[str]) -> list[tuple[str, str]]:
    """(name, SQL over the day's aggregate ``a`` and the day index ``d``) of every step feature."""
    found = [(f"log_n_{c}", f"ln(1 + coalesce(a.n_{c}, 0))") for c in type_columns(types).values()]
    found += [("log_events", "ln(1 + coalesce(a.events, 0))"), ("active", "(a.events IS NOT NULL)::DOUBLE"),
              ("log_sessions", "ln(1 + coalesce(a.sessions, 0))")]
    if mapping.value:
        found.append(("log_value", "sign(coalesce(a.value, 0)) * ln(1 + abs(coalesce(a.value, 0)))"))
        found.append(("mean_value", "coalesce(a.value / nullif(a.valued, 0), 0)"))
    if mapping.item_id:
        found.append(("log_items", "ln(1 + coalesce(a.items, 0))"))
    found += [("position", "days.d / $observation_days"),
              ("weekday_sin", "sin(2 * pi() * dayofweek(days.first_day + days.d::INTEGER) / 7)"),
              ("weekday_cos", "cos(2 * pi() * dayofweek(days.first_day + days.d::INTEGER) / 7)")]
    return found


def steps_sql(mapping: EventMapping, types: list[str], cohort: str) -> str:
    """Every step of every member of ``cohort`` (a SQL date), ordered by user then day; parameter
    ``$observation_days``. Reads ``_members`` and ``_observed``."""
    per_type = "".join(f", count(*) FILTER (WHERE event_type = {sql_text(t)}) AS n_{c}"
                       for t, c in type_columns(types).items())
    extra = (f", {exact_sum('value')} AS value, count(value) AS valued" if mapping.value else "") + (", count(DISTINCT item_id) AS items"
                                                                  if mapping.item_id else "")
    features = ", ".join(f"({sql}) AS {name}" for name, sql in step_features(mapping, types))
    return f"""
        WITH days AS (
            SELECT m.user_id, m.first_day, r.range AS d
            FROM _members m, range($observation_days) r WHERE m.cohort_day = {cohort}),
        agg AS (
            SELECT user_id, d, count(*) AS events, count(DISTINCT session_no) AS sessions{per_type}{extra}
            FROM _observed WHERE cohort_day = {cohort} GROUP BY user_id, d)
        SELECT days.user_id, days.d, {features}
        FROM days LEFT JOIN agg a ON a.user_id = days.user_id AND a.d = days.d
        ORDER BY days.user_id, days.d"""
