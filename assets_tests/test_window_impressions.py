"""The observation-window extract against a hand-computed example: which raw rows each cohort keeps, that they
are copied column for column (no rounding, the source line kept), sorted, counted as the daily activity
counts them, written byte for byte the same on a re-run, and read by the sessions in place of the raw days."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
from conftest import CALENDAR, Imp, tid, write_impressions, write_snapshots
from pipeline_helpers import ingest_folder

from churn_dagster.stages.cohorts.sql import cohorts
from churn_dagster.stages.features.sql import sessions, window
from churn_dagster.storage.lake import MissingUpstreamError

A, B, C = tid("A"), tid("B"), tid("C")
DAY1, DAY2 = CALENDAR.day(1), CALENDAR.day(2)

# A and B are first seen on 1 Nov (window dt 1..14), C on 2 Nov (dt 2..15). Expected by hand:
#   cohort 1 Nov: A's two cards of 10:00 on dt 1, its rows of dt 3 and 14 (not 15 Nov: A's label period),
#   B's rows of dt 1 and 2: 6 rows, in the order user, request time, then position (A's 10:00 cards 1, 2);
#   cohort 2 Nov: C's rows of dt 2 and 15 (15 is C's last observation day; not 16 Nov): 2 rows.
IMPRESSIONS = [
    Imp(A, "2019-11-01 10:00:00", 2, click=True, view_time=12.345678912345),
    Imp(A, "2019-11-01 10:00:00", 1),
    Imp(A, "2019-11-03 08:00:00", 1, like=True),
    Imp(A, "2019-11-14 23:59:59", 3),
    Imp(A, "2019-11-15 00:00:00", 1),  # label period of cohort 1 Nov
    Imp(B, "2019-11-02 09:00:00", 1, click=True, view_time=3.5),
    Imp(B, "2019-11-01 09:00:00", 1),
    Imp(C, "2019-11-02 07:00:00", 1),
    Imp(C, "2019-11-15 22:00:00", 1),
    Imp(C, "2019-11-16 01:00:00", 1),  # label period of cohort 2 Nov
]


@pytest.fixture
def built(tmp_path, lake, con):
    src = tmp_path / "src"
    write_impressions(src, IMPRESSIONS)
    write_snapshots(src, [A, B, C])
    ingest_folder(con, src, lake, stems={"impression_data"})
    for d in range(1, CALENDAR.num_days + 1):
        cohorts.build_user_day_activity(con, lake, CALENDAR.day(d))
    cohorts.build_cohort_users(con, lake, CALENDAR, [DAY1, DAY2])
    written = window.build_window_impressions(con, lake, CALENDAR, [DAY1, DAY2])
    return lake, written


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_each_cohort_keeps_exactly_its_users_window_rows_in_order(built, con):
    lake, written = built
    assert written == {DAY1: 6, DAY2: 2}
    assert window.expected_rows(con, lake, CALENDAR, [DAY1, DAY2]) == written  # the daily activity's count
    first = pd.read_parquet(lake.cohort("window_impressions", DAY1))
    assert list(zip(first["user_id"], first["dt"], first["impress_position"])) == [
        (A, 1, 1), (A, 1, 2), (A, 3, 1), (A, 14, 3), (B, 1, 1), (B, 2, 1)]
    second = pd.read_parquet(lake.cohort("window_impressions", DAY2))
    assert list(zip(second["user_id"], second["dt"])) == [(C, 2), (C, 15)]


def test_rows_are_the_raw_rows_column_for_column(built, con):
    """Every stored column of the raw table, values as loaded (a view time of 12 decimals is not rounded), and
    the source line that leads back to the file."""
    lake, _ = built
    extract = pd.read_parquet(lake.cohort("window_impressions", DAY1))
    raw = pd.concat([pd.read_parquet(lake.raw_day("impression_data", CALENDAR.day(d))) for d in (1, 2, 3, 14)])
    raw = raw[raw["user_id"].isin([A, B])]
    assert list(extract.columns) == list(raw.columns)
    key = ["user_id", "impress_time_ms", "impress_position"]
    pd.testing.assert_frame_equal(extract.reset_index(drop=True),
                                  raw.sort_values(key).reset_index(drop=True))
    assert 12.345678912345 in extract["mlog_view_time"].tolist()
    lines = sorted(extract["source_line"])
    assert len(set(lines)) == 6  # each row keeps its own line of impression_data.csv


def test_a_rerun_writes_the_same_bytes_alone_or_in_a_range(built, con):
    lake, _ = built
    before = {c: _digest(lake.cohort("window_impressions", c)) for c in (DAY1, DAY2)}
    window.build_window_impressions(con, lake, CALENDAR, [DAY2])
    window.build_window_impressions(con, lake, CALENDAR, [DAY1])
    assert {c: _digest(lake.cohort("window_impressions", c)) for c in (DAY1, DAY2)} == before


def test_sessions_read_the_extract_and_need_it(built, con):
    lake, _ = built
    assert sessions.build_sessions(con, lake, CALENDAR, [DAY1, DAY2], gap_minutes=30) == {DAY1: 5, DAY2: 2}
    lake.cohort("window_impressions", DAY2).unlink()
    with pytest.raises(MissingUpstreamError, match="window_impressions"):
        sessions.build_sessions(con, lake, CALENDAR, [DAY2], gap_minutes=30)
