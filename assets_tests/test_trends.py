"""Trend labels (DIGMN's day- and session-level tasks) against hand-computed examples.

Cohort dt 1 (1 Nov): period 1 = dt 1..14, period 2 = dt 15..28 (14 + 14). Users, times Asia/Shanghai:

    user  period-1 impressions            period-2 impressions          active days  sessions  day   session
    S     dt 1, dt 2                      dt 15, dt 16 (+ dt 29, ignored)  2 -> 2       2 -> 2    same  not decrease
    I     dt 1                            dt 15, dt 20                     1 -> 2       1 -> 2    incr  not decrease
    D     dt 1, 2, 3                      dt 15, 16                        3 -> 2       3 -> 2    decr  decrease
    M     dt 1 10:00                      dt 15 10:00, 11:00               1 -> 1       1 -> 2    same  not decrease
    F     dt 1 10:00, 10:30 (gap = 30 min) dt 15 10:00, 10:29              1 -> 1       2 -> 1    same  decrease
    B     dt 1 10:00, dt 14 23:50         dt 15 00:10 (continues 23:50)    2 -> 1       2 -> 0    decr  decrease

Median of period-1 sessions over the six users: sorted 1 1 2 2 2 3 -> (2 + 2) / 2 = 2, so I and M are filtered out.
"""

from __future__ import annotations

import pytest
from conftest import CALENDAR, Imp, tid
from pipeline_helpers import cohorts_from_impressions, rows

from churn_dagster.domain.calendar import Calendar
from churn_dagster.stages.features.sql import sessions
from churn_dagster.studies.trends.sql import trends
from churn_dagster.studies.trends.sql.trends import TrendSettings, TrendWindowError

# The fixture's users and cards, as IDs of the published grammar (see conftest.tid).
S, I, D, M, F, B, L = (tid(u) for u in "SIDMFBL")

COHORT = CALENDAR.day(1)
DEFAULTS = TrendSettings()


def _at(dt: int, hh: int = 10, mm: int = 0) -> str:
    return f"{CALENDAR.day(dt).isoformat()} {hh:02d}:{mm:02d}:00"


MAIN = [
    Imp(S, _at(1)), Imp(S, _at(2)), Imp(S, _at(15)), Imp(S, _at(16)), Imp(S, _at(29)),
    Imp(I, _at(1)), Imp(I, _at(15)), Imp(I, _at(20)),
    Imp(D, _at(1)), Imp(D, _at(2)), Imp(D, _at(3)), Imp(D, _at(15)), Imp(D, _at(16)),
    Imp(M, _at(1)), Imp(M, _at(15)), Imp(M, _at(15, 11)),
    Imp(F, _at(1)), Imp(F, _at(1, 10, 30)), Imp(F, _at(15)), Imp(F, _at(15, 10, 29)),
    Imp(B, _at(1)), Imp(B, _at(14, 23, 50)), Imp(B, _at(15, 0, 10)),
]


def _build(tmp_path, lake, con, imps, cohort_days, settings: TrendSettings = DEFAULTS):
    cohorts_from_impressions(tmp_path, lake, con, imps, cohort_days)
    summaries = trends.build_trend_labels(con, lake, CALENDAR, cohort_days, settings)
    by_cohort = {c: {r["user_id"]: r for r in rows(con, lake.cohort("trend_labels", c))} for c in cohort_days}
    return summaries, by_cohort


def test_labels_at_the_class_boundaries(tmp_path, lake, con):
    summaries, by_cohort = _build(tmp_path, lake, con, MAIN, [COHORT])
    got = by_cohort[COHORT]
    expected = {  # active days, sessions, day_trend, session_trend
        S: ((2, 2), (2, 2), 1, 0),
        I: ((1, 2), (1, 2), 2, 0),
        D: ((3, 2), (3, 2), 0, 1),
        M: ((1, 1), (1, 2), 1, 0),
        F: ((1, 1), (2, 1), 1, 1),
        B: ((2, 1), (2, 0), 0, 1),
    }
    for user, (days, n_sessions, day_trend, session_trend) in expected.items():
        r = got[user]
        assert (r["first_active_days"], r["second_active_days"]) == days, user
        assert (r["first_sessions"], r["second_sessions"]) == n_sessions, user
        assert (r["day_trend"], r["session_trend"]) == (day_trend, session_trend), user
    assert got[D]["first_sessions_per_day"] == pytest.approx(3 / 14)
    assert got[S]["first_active_rate"] == pytest.approx(2 / 14)

    assert {u for u, r in got.items() if r["kept_by_filter"]} == {S, D, F, B}
    assert all(r["first_sessions_median"] == 2.0 for r in got.values())
    s = summaries[COHORT]
    assert (s.users, s.kept, s.first_sessions_median) == (6, 4, 2.0)
    assert s.day_trend_counts == (2, 2, 0) and s.session_decrease == 3  # among S, D, F, B
    assert s.day_trend_shares == {"decrease": 0.5, "same": 0.5, "increase": 0.0}
    assert s.session_trend_shares == {"not_decrease": 0.25, "decrease": 0.75}


def test_period_one_sessions_match_the_sessions_table(tmp_path, lake, con):
    _, by_cohort = _build(tmp_path, lake, con, MAIN, [COHORT])
    sessions.build_sessions(con, lake, CALENDAR, [COHORT], gap_minutes=30)
    per_user = con.execute(
        "SELECT user_id, count(*) FROM read_parquet($p) GROUP BY user_id", {"p": str(lake.cohort("sessions", COHORT))}
    ).fetchall()
    assert dict(per_user) == {u: r["first_sessions"] for u, r in by_cohort[COHORT].items()}


def test_unequal_periods_compare_per_day_rates(tmp_path, lake, con):
    # 14 + 7: period 2 is dt 15..21, so I's dt-20 impression still counts and S's dt 15, 16 give a higher rate.
    _, by_cohort = _build(tmp_path, lake, con, MAIN, [COHORT], TrendSettings(14, 7))
    got = by_cohort[COHORT]
    b = got[B]  # 2 active days of 14 vs 1 of 7: equal rates -> same; 2 sessions vs 0 -> decrease
    assert (b["first_active_days"], b["second_active_days"], b["day_trend"], b["session_trend"]) == (2, 1, 1, 1)
    assert got[S]["day_trend"] == 2  # 2/14 < 2/7
    assert got[S]["second_sessions_per_day"] == pytest.approx(2 / 7)
    assert got[D]["session_trend"] == 0  # 3/14 < 2/7: not a decrease per day, though fewer sessions


def _sessions_on_first_day(user: str, dt: int, n: int) -> list[Imp]:
    return [Imp(user, _at(dt, 8 + 2 * k)) for k in range(n)]  # two hours apart: n sessions


def test_median_filter_even_and_odd_cohorts(tmp_path, lake, con):
    even, odd = CALENDAR.day(2), CALENDAR.day(3)
    imps = [imp for u, n in (("E1", 1), ("E2", 2), ("E4", 4), ("E5", 5)) for imp in _sessions_on_first_day(tid(u), 2, n)]
    imps += [imp for u, n in (("O1", 1), ("O2", 2), ("O3", 3), ("O4", 4), ("O5", 5)) for imp in _sessions_on_first_day(tid(u), 3, n)]
    summaries, by_cohort = _build(tmp_path, lake, con, imps, [even, odd])
    # Even: 1 2 4 5 -> (2 + 4) / 2 = 3, nobody has exactly 3. Odd: 1 2 3 4 5 -> 3, and 3 itself is kept.
    assert summaries[even].first_sessions_median == 3.0
    assert {u for u, r in by_cohort[even].items() if r["kept_by_filter"]} == {tid("E4"), tid("E5")}
    assert summaries[odd].first_sessions_median == 3.0
    assert {u for u, r in by_cohort[odd].items() if r["kept_by_filter"]} == {tid("O3"), tid("O4"), tid("O5")}
    assert (summaries[even].kept, summaries[odd].kept) == (2, 3)
    # Nobody returns in period 2: all decrease, on both tasks.
    assert summaries[odd].day_trend_counts == (3, 0, 0) and summaries[odd].session_decrease == 3


def test_without_the_median_filter_everyone_is_kept(tmp_path, lake, con):
    summaries, by_cohort = _build(tmp_path, lake, con, MAIN, [COHORT], TrendSettings(median_filter=False))
    assert all(r["kept_by_filter"] for r in by_cohort[COHORT].values())
    assert summaries[COHORT].kept == 6 and summaries[COHORT].day_trend_counts == (2, 3, 1)


def test_labellable_cohorts():
    assert trends.trend_cohorts(CALENDAR, TrendSettings()) == [CALENDAR.day(d) for d in (1, 2, 3)]
    # 14 + 7 is the churn design's window: the same cohorts as the label scores (dt 1..10).
    assert trends.trend_cohorts(CALENDAR, TrendSettings(14, 7))[-1] == CALENDAR.last_labelled_cohort
    # A 21-day log: 10 + 10 days would fit from dt 1 and 2, but only dt 1 is a labelled cohort (14 + 7 days).
    short = Calendar(CALENDAR.first_day, CALENDAR.day(21))
    assert trends.trend_cohorts(short, TrendSettings(10, 10)) == [CALENDAR.day(1)] == [short.last_labelled_cohort]


def test_a_cohort_whose_second_period_does_not_fit_is_not_labelled(tmp_path, lake, con):
    late = CALENDAR.day(4)  # dt 4 + 27 = dt 31, past the last day
    with pytest.raises(TrendWindowError, match="2019-11-04"):
        _build(tmp_path, lake, con, [Imp(L, _at(4))], [COHORT, late])
    assert not lake.cohort("trend_labels", late).exists()
    assert not lake.cohort("trend_labels", COHORT).exists()
