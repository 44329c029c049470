"""Cohorts of an event log, the static features of each user's observation window and the label-period
components, in SQL over the canonical event table.

A user belongs to the cohort of their first event (any type): with a daily grain the day itself, with a
weekly grain the week that starts on the ``start`` day's weekday. Each user's own windows follow their first
day ``f``: observation ``f .. f+O-1``, label ``f+O .. f+O+L-1``. Nothing at or after ``f+O`` reaches a
feature; labels exist only once the whole cohort's label windows lie inside the log (``labels_closed``).

The features fit any log (``docs/EVENT_LOGS.md``): per-event-type counts and shares, recency, frequency and
monetary value (with the latest value and the values' trend), acquisition time, active days, inter-event
and inter-session gaps with their regularity (the gaps' coefficient of variation, the share of active
days on the most frequent weekday), distinct items and owners, and the trend of daily activity inside the
window. The label components are the engagement
score's (``domain/engagement.py``): churned (no activity event), frequency (active days / L), intensity
(activity events) and quality (events weighted per type).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from churn_dagster.stages.cohorts.sql.labels import split_sql
from churn_dagster.stages.events.sql.mapping import EventMapping
from churn_dagster.stages.events.sql.times import sql_text
from churn_dagster.storage.duck import exact_avg, exact_sum

GRAINS = {"day": 1, "week": 7}
# Per-type features are kept for at most this many event types (the most frequent), so a log with
# thousands of types does not make thousands of columns.
MAX_TYPE_FEATURES = 24
SESSION_GAP_MS = 30 * 60 * 1000
# The reference row's features: recency, frequency and monetary value.
RFM_FEATURES = ("recency_days", "events_total", "active_days", "value_sum")


@dataclass(frozen=True)
class Windows:
    """Observation and label lengths, the cohort grain, the first cohort and the training window."""

    start: date
    observation_days: int = 14
    label_days: int = 14
    grain: str = "day"
    training_cohorts: int = 4

    @property
    def grain_days(self) -> int:
        return GRAINS[self.grain]

    def cohort_of(self, day: date) -> date:
        return self.start + timedelta(days=(day - self.start).days // self.grain_days * self.grain_days)

    def last_member_day(self, cohort: date) -> date:
        return cohort + timedelta(days=self.grain_days - 1)

    def observation_closes(self, cohort: date) -> date:
        """The day the last member's observation window ends."""
        return self.last_member_day(cohort) + timedelta(days=self.observation_days - 1)

    def labels_close(self, cohort: date) -> date:
        """The day the last member's label window ends."""
        return self.observation_closes(cohort) + timedelta(days=self.label_days)

    def previous(self, cohort: date, n: int) -> list[date]:
        """The ``n`` cohorts up to ``cohort``, oldest first, not before ``start``."""
        found = [cohort - timedelta(days=k * self.grain_days) for k in range(n)]
        return sorted(c for c in found if c >= self.start)

    def training_window(self, cohort: date) -> list[date]:
        return self.previous(cohort, self.training_cohorts)

    def out_of_time(self, cohort: date) -> list[date]:
        """The cohorts whose labels had closed when ``cohort``'s observation closed: what a retrain on that day
        could fit on (the newest ``training_cohorts`` of them)."""
        day = self.observation_closes(cohort)
        newest = cohort
        while newest >= self.start and self.labels_close(newest) > day:
            newest -= timedelta(days=self.grain_days)
        return self.previous(newest, self.training_cohorts) if newest >= self.start else []


def type_columns(types: list[str]) -> dict[str, str]:
    """A column-name stem for each event type (lower-case letters, digits and underscores, unique)."""
    found: dict[str, str] = {}
    for event_type in types:
        stem = re.sub(r"[^a-z0-9]+", "_", event_type.lower()).strip("_")[:40] or "type"
        candidate, k = stem, 2
        while candidate in found.values():
            candidate, k = f"{stem}_{k}", k + 1
        found[event_type] = candidate
    return found


def in_list(column: str, values) -> str:
    return f"{column} IN ({', '.join(sql_text(v) for v in values)})" if values else "TRUE"


def weight_sql(mapping: EventMapping, types: list[str]) -> str:
    """The engagement weight of an event's type: its configured weight, else 1 for an activity type, 0
    for any other."""
    activity = mapping.activity_types or types
    cases = " ".join(f"WHEN {sql_text(t)} THEN {float(w)}" for t, w in mapping.weights.items())
    default = f"CASE WHEN {in_list('event_type', activity)} THEN 1.0 ELSE 0.0 END"
    return f"CASE event_type {cases} ELSE {default} END" if cases else default


def cohort_day_sql(windows: Windows, day: str) -> str:
    """The cohort (a SQL DATE) of a user whose first event is on ``day``: :meth:`Windows.cohort_of` in SQL."""
    g, start = windows.grain_days, f"DATE '{windows.start.isoformat()}'"
    return f"{start} + (({g} * floor(datediff('day', {start}, {day}) / {g}))::INTEGER)"


def members_sql(windows: Windows, cohorts: list[date]) -> str:
    """``_members``: user_id, first_day, cohort_day of the users of ``cohorts`` (from ``_events``)."""
    keys = ", ".join(f"DATE '{c.isoformat()}'" for c in cohorts)
    return f"""
        CREATE OR REPLACE TEMP TABLE _members AS
        SELECT user_id, first_day, {cohort_day_sql(windows, "first_day")} AS cohort_day
        FROM (SELECT user_id, min(local_day) AS first_day FROM _events GROUP BY user_id)
        WHERE cohort_day IN ({keys})"""


def session_key_sql(has_session_id: bool) -> str:
    """A record's session key over rows with ``user_id``, ``event_ms``, ``file``, ``line``, ``session_id`` and
    ``gap_ms`` (the gap to the user's previous event): the log's session id where it has one (sessions may
    interleave), else the number of 30-minute gaps so far."""
    if has_session_id:
        return "coalesce(session_id, 'event ' || line)"
    rule = (f"sum(CASE WHEN gap_ms IS NULL OR gap_ms >= {SESSION_GAP_MS} THEN 1 ELSE 0 END) "
            "OVER (PARTITION BY user_id ORDER BY event_ms, file, line)")
    return f"({rule})::VARCHAR"


def observed_sql(windows: Windows, mapping: EventMapping) -> str:
    """``_observed``: the members' events inside their observation windows, with the day index ``d``, the gap
    to the user's previous event and a session key: the session_id column where the log has one (sessions
    may interleave), else a new session after 30 minutes without an event."""
    o = windows.observation_days
    key = session_key_sql(mapping.session_id is not None)
    return f"""
        CREATE OR REPLACE TEMP TABLE _observed AS
        WITH inside AS (
            SELECT e.*, m.cohort_day, datediff('day', m.first_day, e.local_day) AS d,
                   event_ms - lag(event_ms) OVER (PARTITION BY e.user_id ORDER BY event_ms, e.file, e.line) AS gap_ms
            FROM _events e JOIN _members m USING (user_id)
            WHERE e.local_day < m.first_day + {o})
        SELECT *, {key} AS session_no FROM inside"""


# regr_slope() and stddev_samp() accumulate in floating point in the order the threads finish (see
# storage.duck.exact_sum); from exact sums instead: the least-squares slope of value on the day index over the
# events with a value, and the sample standard deviation of the integer gaps (sums of squares in 128 bits).
_D_SUM = "sum(d) FILTER (WHERE value IS NOT NULL)"
_VALUE_SLOPE = (f"(count(value) * {exact_sum('value * d')} - {_D_SUM} * {exact_sum('value')})"
                f" / nullif(count(value) * sum(d * d) FILTER (WHERE value IS NOT NULL) - {_D_SUM} * {_D_SUM}, 0)")
_GAP_SD = ("sqrt(((count(gap_ms) * sum(gap_ms::HUGEINT * gap_ms) - sum(gap_ms::HUGEINT) * sum(gap_ms::HUGEINT))"
           " / nullif(count(gap_ms) * (count(gap_ms) - 1), 0))::DOUBLE)")


def features_sql(windows: Windows, mapping: EventMapping, types: list[str]) -> str:
    """One row per member: the static features (NULL where undefined, e.g. a gap with one event)."""
    o = windows.observation_days
    centre = (o - 1) / 2
    spread = o * (o * o - 1) / 12  # sum over the window's days of (d - centre)^2
    per_type = ", ".join(
        f"count(*) FILTER (WHERE event_type = {sql_text(t)}) AS n_{c}, "
        f"count(*) FILTER (WHERE event_type = {sql_text(t)}) / count(*) AS share_{c}"
        for t, c in type_columns(types).items())
    value = (f"{exact_sum('value')} AS value_sum, {exact_avg('value')} AS value_mean, max(value) AS value_max, "
             "arg_min(value, event_ms) FILTER (WHERE value IS NOT NULL) AS first_value, "
             "arg_max(value, event_ms) FILTER (WHERE value IS NOT NULL) AS last_value, "
             f"{_VALUE_SLOPE} AS value_trend, count(value) / count(*) AS valued_share, " if mapping.value else "")
    items = ("count(DISTINCT item_id) AS distinct_items, count(DISTINCT item_id) / count(*) AS item_novelty, "
             if mapping.item_id else "")
    owners = "count(DISTINCT item_owner) AS distinct_owners, " if mapping.item_owner else ""
    two_pi = "(2 * pi())"
    return f"""
        WITH sessions AS (
            SELECT user_id, session_no, min(event_ms) AS started, max(event_ms) AS ended, count(*) AS events
            FROM _observed GROUP BY user_id, session_no),
        per_session AS (
            SELECT user_id, count(*) AS sessions, avg(events) AS events_per_session,
                   avg(ended - started) / 60000.0 AS session_minutes,
                   avg(CASE WHEN raw_gap_ms < 0 THEN 0 ELSE raw_gap_ms END) / 3600000.0 AS session_gap_hours_mean  -- interleaved: 0
            FROM (SELECT *, started - lag(ended) OVER (PARTITION BY user_id ORDER BY started, session_no) AS raw_gap_ms
                  FROM sessions)
            GROUP BY user_id),
        weekdays AS (
            SELECT user_id, max(days) / sum(days) AS top_weekday_share
            FROM (SELECT user_id, dayofweek(local_day) AS weekday, count(DISTINCT local_day) AS days
                  FROM _observed GROUP BY user_id, weekday)
            GROUP BY user_id)
        SELECT o.user_id, any_value(o.cohort_day) AS cohort_day,
               count(*) AS events_total, count(DISTINCT d) AS active_days, count(DISTINCT d) / {o} AS active_share,
               {o} - 1 - max(d) AS recency_days, max(d) - min(d) AS tenure_days,
               {per_type + ", " if per_type else ""}{value}{items}{owners}
               avg(gap_ms) / 3600000.0 AS gap_hours_mean, max(gap_ms) / 3600000.0 AS gap_hours_max,
               {_GAP_SD} / avg(gap_ms) AS gap_cv, any_value(w.top_weekday_share) AS top_weekday_share,
               any_value(s.sessions) AS sessions, any_value(s.events_per_session) AS events_per_session,
               any_value(s.session_minutes) AS session_minutes,
               any_value(s.session_gap_hours_mean) AS session_gap_hours_mean,
               sum(d - {centre}) / {spread} AS daily_trend,
               count(*) FILTER (WHERE d >= {o / 2}) / count(*) AS second_half_share,
               sin({two_pi} * arg_min(local_hour, event_ms) / 24) AS first_hour_sin,
               cos({two_pi} * arg_min(local_hour, event_ms) / 24) AS first_hour_cos,
               sin({two_pi} * dayofweek(min(local_day)) / 7) AS first_weekday_sin,
               cos({two_pi} * dayofweek(min(local_day)) / 7) AS first_weekday_cos
        FROM _observed o JOIN per_session s USING (user_id) JOIN weekdays w USING (user_id)
        GROUP BY o.user_id"""


def labels_sql(windows: Windows, mapping: EventMapping, types: list[str], closed: list[date]) -> str:
    """One row per member: the split and, for members of a cohort whose labels have closed, the label
    components (NULL otherwise). Uses the split parameters ``$seed``, ``$train``, ``$validation``."""
    o, length = windows.observation_days, windows.label_days
    activity = in_list("e.event_type", mapping.activity_types)
    closed_keys = ", ".join(f"DATE '{c.isoformat()}'" for c in closed) or "NULL"
    return f"""
        WITH period AS (
            SELECT m.user_id, count(*) FILTER (WHERE {activity}) AS impressions,
                   count(DISTINCT e.local_day) FILTER (WHERE {activity}) AS active_days,
                   {exact_sum(weight_sql(mapping, types))} AS quality_raw
            FROM _members m JOIN _events e ON e.user_id = m.user_id
             AND e.local_day BETWEEN m.first_day + {o} AND m.first_day + {o + length - 1}
            GROUP BY m.user_id)
        SELECT m.user_id, m.cohort_day, m.first_day, {split_sql("m.user_id")} AS split,
               m.cohort_day IN ({closed_keys}) AS labelled,
               CASE WHEN m.cohort_day IN ({closed_keys}) THEN coalesce(p.impressions, 0) = 0 END AS churned,
               CASE WHEN m.cohort_day IN ({closed_keys}) THEN coalesce(p.active_days, 0) / {length} END AS frequency,
               CASE WHEN m.cohort_day IN ({closed_keys}) THEN coalesce(p.impressions, 0)::DOUBLE END AS impressions,
               CASE WHEN m.cohort_day IN ({closed_keys}) THEN coalesce(p.quality_raw, 0)::DOUBLE END AS quality_raw
        FROM _members m LEFT JOIN period p USING (user_id)"""
