"""Sums of floating-point values that reach a stored table are exact, so a re-run writes the same bytes whatever
order DuckDB's threads add in (``storage.duck.exact_sum``).

A parallel hash aggregate adds each thread's partial sum in the order the threads finish; rounding the result
to ten places hid that except next to a rounding boundary, and at full scale a re-run of the KPI features
rewrote one value's last digit (7.0526980753 against 7.0526980754). Each case below has a hand-computed answer
that a floating-point sum in row order misses.
"""

from __future__ import annotations

import random

import pytest
from conftest import CALENDAR, Imp, tid
from pipeline_helpers import cohorts_from_impressions, rows

from churn_dagster.stages.events.sql.cohorts import _GAP_SD, _VALUE_SLOPE
from churn_dagster.stages.features.sql import sessions
from churn_dagster.storage.duck import exact_avg, exact_sum
from churn_dagster.studies.case_study.sql.data import fit_threshold

U1 = tid("U1")


def _table(con, values, order_seed: int) -> None:
    shuffled = list(values)
    random.Random(order_seed).shuffle(shuffled)
    con.execute("CREATE OR REPLACE TABLE t AS SELECT unnest($v) AS x, unnest($g) AS g",
                {"v": shuffled, "g": [i % 3 for i in range(len(shuffled))]})


def test_the_sum_and_the_mean_do_not_depend_on_the_order_of_the_terms(con):
    # 1e15 and -1e15 cancel; the rest sums to 3.6. In floating point 1e15 + 0.1 is already rounded (to a
    # multiple of 0.125), so the plain sum depends on which terms meet first.
    values = [1e15, 0.1, -1e15, 0.2, 3.3]
    plain, exact = set(), set()
    for seed in range(20):
        _table(con, values, seed)
        plain.add(con.execute("SELECT sum(x) FROM t").fetchone()[0])
        exact.add(con.execute(f"SELECT {exact_sum('x')}, {exact_avg('x')} FROM t").fetchone())
    assert len(plain) > 1  # the hazard is real: the same terms, other sums
    assert exact == {(3.6, 0.72)}


def test_a_view_time_total_of_ten_tenths_is_one(tmp_path, lake, con):
    # Ten clicks of 0.1 s in one request: added in floating point, 0.1 ten times is 0.9999999999999999.
    imps = [Imp(U1, "2019-11-01 10:00:00", p, click=True, view_time=0.1) for p in range(1, 11)]
    cohorts_from_impressions(tmp_path, lake, con, imps, [CALENDAR.day(1)])
    (day,) = rows(con, lake.daily("user_day_activity", CALENDAR.day(1)))
    assert day["view_time_s"] == 1.0
    sessions.build_sessions(con, lake, CALENDAR, [CALENDAR.day(1)], 30.0)
    (session,) = rows(con, lake.cohort("sessions", CALENDAR.day(1)))
    assert session["view_time_s"] == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_the_event_log_slope_and_gap_spread_are_exact_and_order_free(con, seed):
    # value = 1 + 2d on days 0, 1, 2 (slope 2); day 3 has no value and is left out. Gaps of 1000 and 3000 ms:
    # mean 2000, sample standard deviation sqrt((1000² + 1000²) / 1) = 1414.2135623730951.
    data = [(0, 1.0, 1000), (1, 3.0, 3000), (2, 5.0, None), (3, None, None)]
    random.Random(seed).shuffle(data)
    con.execute("CREATE OR REPLACE TABLE e AS SELECT unnest($d) AS d, unnest($v) AS value, unnest($g) AS gap_ms",
                {"d": [r[0] for r in data], "v": [r[1] for r in data], "g": [r[2] for r in data]})
    slope, spread = con.execute(f"SELECT {_VALUE_SLOPE}, {_GAP_SD} FROM e").fetchone()
    assert slope == 2.0
    assert spread == pytest.approx(1414.2135623730951, rel=1e-15)


def test_the_case_study_threshold_of_ten_tenths_is_a_tenth(con):
    # Ten training users with a CTR of 0.1 (and a test user, left out): the mean added in floating point is
    # 0.09999999999999999, and a user at exactly 0.1 would then count as active.
    con.execute("CREATE OR REPLACE TABLE _case_study AS SELECT 'train' AS split, 0.1::DOUBLE AS target_ctr "
                "FROM range(10) UNION ALL SELECT 'test', 0.9::DOUBLE")
    threshold = fit_threshold(con)
    assert (threshold.value, threshold.fitted_on_users) == (0.1, 10)


def test_a_slope_over_one_day_is_undefined_not_nan(con):
    con.execute("CREATE OR REPLACE TABLE e AS SELECT 4 AS d, unnest([1.0, 2.0]) AS value, unnest([5, 7]) AS gap_ms")
    slope, spread = con.execute(f"SELECT {_VALUE_SLOPE}, {_GAP_SD} FROM e").fetchone()
    assert slope is None and spread == pytest.approx(2 ** 0.5)
