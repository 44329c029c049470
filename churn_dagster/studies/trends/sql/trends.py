"""Engagement-trend labels of the DIGMN tasks (WSDM 2023): does a cohort user's activity fall, hold or rise from
a first period to the second?

For a cohort starting on day ``f``, period 1 is ``dt f .. f+P1-1`` and period 2 the ``P2`` days after it
(:class:`TrendSettings`, 14 + 14 by default, the paper's "first two weeks versus the following two"). A cohort
can be labelled only when it is a labelled cohort of the churn calendar (its members and split exist) and
its last period-2 day is inside the data: with 30 days and 14 + 14, cohorts dt 1..3 (:func:`trend_cohorts`);
asking for another one raises :class:`TrendWindowError` and writes nothing, rather than an empty partition
that would read as "no users".

Per user (every user of ``cohort_users``):

- ``first_active_days`` / ``second_active_days``: days of the period with at least one impression.
- ``first_sessions`` / ``second_sessions``: sessions that *start* in the period, by the 30-minute rule of
  :mod:`churn_dagster.stages.features.sql.sessions` (the same SQL, :func:`session_numbering_ctes`), applied to the
  whole span of both periods, so a session running across the boundary at local midnight counts once, in
  the period where it starts. The ``sessions`` table itself covers only the observation window, which is
  why the span is sessionised again here; the period-1 count equals the ``sessions`` table's count when
  period 1 is the observation window.
- ``*_sessions_per_day``: sessions / period length; ``*_active_rate``: active days / period length.
- ``day_trend``: 0 decrease, 1 same, 2 increase, comparing active days per day of period (the paper's
  -1/0/1 shifted to class indices). With equal periods this compares the active-day counts.
- ``session_trend``: **1 = decrease** (fewer sessions per day in period 2), 0 = not decrease (equal or
  more). Note the paper codes the same split the other way round (its y = 1 is "not decrease"); here the
  positive class is the one a retention campaign acts on, as ``churned`` is in the label scores.
  Both comparisons are made on integers (``a * P2`` vs ``b * P1``), so equal rates are never split by
  rounding.

Every ``second_*`` column is read from period 2, which starts on the churn label period's first day with the
defaults and inside the observation window when period 1 is shorter: these are targets, never features. The
``first_*`` columns read only period 1, and so do the models' inputs (:mod:`churn_dagster.studies.trends.sql.inputs`).

For new-user cohorts period 1 contains the first-appearance day, so "decrease" dominates (on the real 10k
head and the synthetic generator about 70-80% of users on both tasks), unlike the paper's 2:2:1 and 3:2 on
established LinkedIn users.

Median filter (the paper keeps users with at least the median number of sessions in the first period, 7 on
LinkedIn): ``first_sessions_median`` is the median (interpolated, the mean of the two middle users for an
even count) of ``first_sessions`` over **all users of the cohort**, and ``kept_by_filter`` is
``first_sessions >= first_sessions_median`` (always true with ``median_filter=False``). It is deliberately
not fit on training users only: it decides which users form the task, not a feature scale, it reads only
period 1, which lies inside the observation window and so is known at prediction time for every user (a
session start depends only on the requests before it, so period 2 cannot move the count), and
the paper filters before it splits. Fitting it on the training split would make the population depend on
the split's seed. Rows of filtered-out users are kept (with the flag) so the class shares of both
populations can be compared; :class:`TrendSummary` reports the kept population.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import duckdb

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.domain.calendar import Calendar
from churn_dagster.errors import UserError
from churn_dagster.stages.cohorts.sql.cohorts import cohort_paths
from churn_dagster.stages.features.sql.sessions import session_numbering_ctes
from churn_dagster.storage.duck import literal_paths, write_partitions
from churn_dagster.storage.lake import Lake, require

DAY_TREND_CLASSES = ("decrease", "same", "increase")
SESSION_TREND_CLASSES = ("not_decrease", "decrease")


@dataclass(frozen=True)
class TrendSettings:
    first_period_days: int = 14
    second_period_days: int = 14
    median_filter: bool = True

    def __post_init__(self) -> None:
        if self.first_period_days < 1 or self.second_period_days < 1:
            raise ValueError("first_period_days and second_period_days must be at least 1")

    @property
    def total_days(self) -> int:
        return self.first_period_days + self.second_period_days


class TrendWindowError(UserError, ValueError):
    """A cohort's second trend period does not fit inside the data."""


def trend_cohorts(calendar: Calendar, settings: TrendSettings) -> list[date]:
    """The labelled cohort days whose two periods both lie inside the data (empty if none does)."""
    last = min(calendar.last_day - timedelta(days=settings.total_days - 1), calendar.last_labelled_cohort)
    return [calendar.first_day + timedelta(days=k) for k in range((last - calendar.first_day).days + 1)]


@dataclass(frozen=True)
class TrendSummary:
    """One cohort: its users, the users the median filter keeps, and the class counts among the kept."""

    users: int
    kept: int
    first_sessions_median: float | None
    day_trend_counts: tuple[int, int, int]  # decrease, same, increase
    session_decrease: int

    @property
    def day_trend_shares(self) -> dict[str, float]:
        return {k: (n / self.kept if self.kept else 0.0) for k, n in zip(DAY_TREND_CLASSES, self.day_trend_counts, strict=True)}

    @property
    def session_trend_shares(self) -> dict[str, float]:
        decrease = self.session_decrease / self.kept if self.kept else 0.0
        return {"not_decrease": (1.0 - decrease) if self.kept else 0.0, "decrease": decrease}


_LOCAL_START = f"((start_ms // 1000 + {fmt.SHANGHAI_UTC_OFFSET_SECONDS}) // 86400)"

TREND_COUNTS_SQL = f"""
CREATE OR REPLACE TEMP TABLE _trend_counts AS
WITH users AS (SELECT user_id, cohort_day, first_dt FROM read_parquet($cohort_paths, hive_partitioning = false)),
requests AS (
    SELECT i.user_id, any_value(u.first_dt) AS first_dt, any_value(i.dt) AS dt, i.impress_time_ms AS t
    FROM read_parquet($impression_paths, hive_partitioning = false) i JOIN users u
      ON i.user_id = u.user_id AND i.dt BETWEEN u.first_dt AND u.first_dt + $total_days - 1
    GROUP BY i.user_id, i.impress_time_ms
),
{session_numbering_ctes('requests')}
sessions AS (
    SELECT user_id, any_value(first_dt) AS first_dt, min(t) AS start_ms FROM numbered GROUP BY user_id, global_session_idx
),
session_counts AS (
    SELECT user_id,
           count_if({_LOCAL_START} - $first_epoch_day + 1 < first_dt + $first_days) AS first_sessions,
           count_if({_LOCAL_START} - $first_epoch_day + 1 >= first_dt + $first_days) AS second_sessions
    FROM sessions GROUP BY user_id
),
day_counts AS (
    SELECT user_id,
           count(DISTINCT dt) FILTER (WHERE dt < first_dt + $first_days) AS first_active_days,
           count(DISTINCT dt) FILTER (WHERE dt >= first_dt + $first_days) AS second_active_days
    FROM requests GROUP BY user_id
)
SELECT u.user_id, u.cohort_day, u.first_dt,
       coalesce(d.first_active_days, 0)::BIGINT AS first_active_days,
       coalesce(d.second_active_days, 0)::BIGINT AS second_active_days,
       coalesce(s.first_sessions, 0)::BIGINT AS first_sessions,
       coalesce(s.second_sessions, 0)::BIGINT AS second_sessions
FROM users u LEFT JOIN day_counts d USING (user_id) LEFT JOIN session_counts s USING (user_id)
"""

TREND_LABELS_SQL = """
CREATE OR REPLACE TEMP TABLE _trend_labels AS
SELECT *,
       CASE WHEN $median_filter THEN first_sessions >= first_sessions_median ELSE true END AS kept_by_filter
FROM (
    SELECT user_id, cohort_day, first_dt,
           first_active_days, second_active_days, first_sessions, second_sessions,
           first_active_days / $first_days AS first_active_rate,
           second_active_days / $second_days AS second_active_rate,
           first_sessions / $first_days AS first_sessions_per_day,
           second_sessions / $second_days AS second_sessions_per_day,
           CASE WHEN first_active_days * $second_days > second_active_days * $first_days THEN 0
                WHEN first_active_days * $second_days = second_active_days * $first_days THEN 1
                ELSE 2 END AS day_trend,
           CASE WHEN first_sessions * $second_days > second_sessions * $first_days THEN 1 ELSE 0 END AS session_trend,
           quantile_cont(first_sessions::DOUBLE, 0.5) OVER (PARTITION BY cohort_day) AS first_sessions_median
    FROM _trend_counts
)
"""

_SUMMARY_SQL = """
SELECT cohort_day, count(*), count_if(kept_by_filter), any_value(first_sessions_median),
       count_if(kept_by_filter AND day_trend = 0), count_if(kept_by_filter AND day_trend = 1),
       count_if(kept_by_filter AND day_trend = 2), count_if(kept_by_filter AND session_trend = 1)
FROM _trend_labels GROUP BY cohort_day
"""


def build_trend_labels(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    calendar: Calendar,
    cohorts: list[date],
    settings: TrendSettings = TrendSettings(),
    gap_minutes: float = 30.0,
) -> dict[date, TrendSummary]:
    """Write ``trend_labels`` (one Parquet file per cohort, one row per cohort user, sorted by user) and
    return each cohort's summary. Reads ``cohort_users`` and the raw impressions of both periods;
    ``gap_minutes`` is the session gap, as for :func:`~churn_dagster.stages.features.sql.sessions.build_sessions`."""
    labellable = set(trend_cohorts(calendar, settings))
    outside = sorted(c for c in cohorts if c not in labellable)
    if outside:
        last = max(labellable).isoformat() if labellable else "none"
        raise TrendWindowError(
            f"trend labels: cohort(s) {', '.join(c.isoformat() for c in outside)} are not labelled cohorts whose "
            f"{settings.first_period_days}+{settings.second_period_days}-day periods fit in the data "
            f"(last labellable cohort: {last})"
        )
    dts = sorted({calendar.dt(c) + k for c in cohorts for k in range(settings.total_days)})
    impression_paths = require((lake.raw_day("impression_data", calendar.day(d)) for d in dts), "trend_labels")
    con.execute(
        TREND_COUNTS_SQL,
        {
            "cohort_paths": cohort_paths(lake, "cohort_users", cohorts, "trend_labels"),
            "impression_paths": literal_paths(impression_paths),
            "total_days": settings.total_days,
            "first_days": settings.first_period_days,
            "gap_ms": int(gap_minutes * 60_000),
            "first_epoch_day": (calendar.first_day - date(1970, 1, 1)).days,
        },
    )
    con.execute(
        TREND_LABELS_SQL,
        {
            "first_days": settings.first_period_days,
            "second_days": settings.second_period_days,
            "median_filter": settings.median_filter,
        },
    )
    write_partitions(con, "_trend_labels", "cohort_day", {c: lake.cohort("trend_labels", c) for c in cohorts}, "user_id")
    found = {row[0]: row[1:] for row in con.execute(_SUMMARY_SQL).fetchall()}
    for table in ("_trend_counts", "_trend_labels"):
        con.execute(f"DROP TABLE {table}")
    summaries = {}
    for c in cohorts:
        users, kept, median, dec, same, inc, s_dec = found.get(c, (0, 0, None, 0, 0, 0, 0))
        summaries[c] = TrendSummary(users, kept, median, (dec, same, inc), s_dec)
    return summaries
