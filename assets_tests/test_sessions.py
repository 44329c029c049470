"""Sessionization against hand-computed examples: the 30-minute rule, unsorted input, feed batches sharing
one second, Asia/Shanghai day boundaries, and the observation window's end."""

from __future__ import annotations

import random

import pytest
from conftest import CALENDAR, Imp, tid, write_impressions, write_snapshots
from pipeline_helpers import ingest_folder, rows

from churn_dagster.stages.cohorts.sql import cohorts
from churn_dagster.stages.features.sql import sessions, window

# The fixture's users and cards, as IDs of the published grammar (see conftest.tid).
A = tid("A")

COHORT = CALENDAR.day(1)

# User A, all times Asia/Shanghai. Expected sessions (by hand):
#   1: 10:00:00 (batch of 3 cards, positions 1..3) and 10:29:59 (29 min 59 s later: same session)
#   2: 10:59:59, exactly 30 min after 10:29:59: a gap of 30 minutes starts a new session
#   3: 23:50:00 on 1 Nov and 00:10:00 on 2 Nov: one session across local midnight (16:10 UTC on 1 Nov)
#   4: 08:00:00 on 2 Nov: the first session that *starts* on day 2
#   (15 Nov, day 15, is in the label period and must not appear)
USER_A = [
    Imp(A, "2019-11-01 10:00:00", 1),
    Imp(A, "2019-11-01 10:00:00", 2, click=True, like=True, view_time=20.0),
    Imp(A, "2019-11-01 10:00:00", 3),
    Imp(A, "2019-11-01 10:29:59", 4, click=True, view_time=12.5),
    Imp(A, "2019-11-01 10:59:59", 1),
    Imp(A, "2019-11-01 23:50:00", 1),
    Imp(A, "2019-11-02 00:10:00", 2, click=True, share=True, comment=True, view_time=60.0),
    Imp(A, "2019-11-02 08:00:00", 1),
    Imp(A, "2019-11-14 21:00:00", 5),  # day 14: last observation day, included
    Imp(A, "2019-11-15 09:00:00", 1),  # day 15: label period, excluded
]


@pytest.fixture
def session_rows(tmp_path, lake, con):
    shuffled = USER_A[:]
    random.Random(7).shuffle(shuffled)  # the real file is not time-ordered within a user
    src = tmp_path / "src"
    write_impressions(src, shuffled)
    write_snapshots(src, [A])
    ingest_folder(con, src, lake, stems={"impression_data"})
    for d in range(1, 31):
        cohorts.build_user_day_activity(con, lake, CALENDAR.day(d))
    cohorts.build_cohort_users(con, lake, CALENDAR, [COHORT])
    window.build_window_impressions(con, lake, CALENDAR, [COHORT])
    sessions.build_sessions(con, lake, CALENDAR, [COHORT], gap_minutes=30)
    return rows(con, lake.cohort("sessions", COHORT), "ORDER BY global_session_idx")


def test_thirty_minute_gap_and_window(session_rows):
    assert [s["global_session_idx"] for s in session_rows] == [1, 2, 3, 4, 5]
    assert [s["total_impressions"] for s in session_rows] == [4, 1, 2, 1, 1]
    assert [s["feed_requests"] for s in session_rows] == [2, 1, 2, 1, 1]


def test_gaps_in_minutes(session_rows):
    gaps = [s["gap_min"] for s in session_rows]
    assert gaps[0] == -1
    assert gaps[1] == pytest.approx(30.0)  # 10:29:59 -> 10:59:59
    assert gaps[2] == pytest.approx(12 * 60 + 50 + 1 / 60)  # 10:59:59 -> 23:50:00
    assert gaps[3] == pytest.approx(7 * 60 + 50)  # 00:10 -> 08:00


def test_days_are_local_shanghai_days(session_rows):
    # Session 3 starts at 23:50 on day 1 and ends after midnight: it belongs to day 1.
    assert [s["day_num"] for s in session_rows] == [1, 1, 1, 2, 14]
    assert [s["daily_session_idx"] for s in session_rows] == [1, 2, 3, 1, 1]
    assert [s["hour_of_day"] for s in session_rows][:2] == [pytest.approx(10.0), pytest.approx(10 + 59 / 60 + 59 / 3600)]
    # 1 Nov 2019 was a Friday (Monday = 0); 2 Nov a Saturday; 14 Nov a Thursday.
    assert [s["weekday"] for s in session_rows] == [4, 4, 4, 5, 3]


def test_duration_counts_view_time_of_last_cards(session_rows):
    # Session 1: 10:00:00 to 10:29:59 plus 12.5 s of viewing the card shown at 10:29:59.
    assert session_rows[0]["duration_min"] == pytest.approx((29 * 60 + 59 + 12.5) / 60)
    # Session 3: 23:50:00 to 00:10:00 plus 60 s.
    assert session_rows[2]["duration_min"] == pytest.approx(21.0)
    # A lone unclicked request lasts zero minutes.
    assert session_rows[1]["duration_min"] == 0


def test_session_totals_and_rates(session_rows):
    first = session_rows[0]
    assert (first["total_clicks"], first["total_likes"], first["max_impress_position"]) == (2, 1, 4)
    assert first["ctr"] == pytest.approx(0.5)
    assert first["like_rate"] == pytest.approx(0.5)  # likes among clicked impressions
    assert first["interaction_rate"] == pytest.approx(0.25)  # impressions with an action besides a click
    third = session_rows[2]
    assert (third["total_shares"], third["total_comments"], third["share_rate"]) == (1, 1, 1.0)
    assert first["view_time_s"] == pytest.approx(32.5)


def test_no_session_reads_the_label_period(session_rows):
    label_start_ms = Imp(A, "2019-11-15 00:00:00").epoch_ms
    assert max(s["end_ms"] for s in session_rows) < label_start_ms
