"""Session and daily event counts (the intent-mining vocabulary) against a hand-worked example.

Cohort dt 1. Cards: V1 is a music video (type 2), P1 an image set (type 1), X9 is missing from the card table.
User A, times Asia/Shanghai:

    session 1 (dt 1): 10:00 batch: V1 clicked, liked, comments viewed, with a swipe-down list of 3 entries
                      (one liked, one with comments viewed, one only viewed); P1 and P1 shown.
                      10:20: P1 clicked, shared, creator homepage visited.
    session 2 (dt 3): 20:00 batch: V1 clicked and commented; X9 shown.

    session   impr clicks likes shares comments c_views homepage swipe_v swipe_a video_i video_c
    1         4    2      1     1      0        1       1        3       2       1       1
    2         2    1      0     0      1        0       0        0       0       1       1

User B: one impression of GCHCIC (not in the card table) on dt 1.
"""

from __future__ import annotations

from conftest import CALENDAR, Imp, tid, write_impressions, write_snapshots
from pipeline_helpers import ingest_folder, rows

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.stages.cohorts.sql import cohorts
from churn_dagster.stages.features.sql import sessions, window
from churn_dagster.studies.trends.sql import session_events
from churn_dagster.studies.trends.sql.session_events import EVENT_COLUMNS

# The fixture's users and cards, as IDs of the published grammar (see conftest.tid).
A, B, P1, V1, X9 = tid("A"), tid("B"), tid("P1"), tid("V1"), tid("X9")

COHORT = CALENDAR.day(1)


def _at(dt: int, hh: int, mm: int = 0) -> str:
    return f"{CALENDAR.day(dt).isoformat()} {hh:02d}:{mm:02d}:00"


def _detail(*entries: tuple[str, str, dict]) -> str:
    """A swipe-down list as published: (card, local log time, flags set to '1')."""
    def entry(position: int, card: str, local: str, flags: dict) -> str:
        values = {"isZan": "0", "isComment": "0", "mlogId": card, "isIntoPersonalHomepage": "0", "mlogViewTime": "4.5",
                  "isShare": "0", "isViewComment": "0", "position": str(position), "logtime": str(Imp("x", local).epoch_ms)}
        values.update(flags)
        return "{" + ", ".join(f"'{k}': '{values[k]}'" for k in fmt.DETAIL_LIST_KEYS) + "}"

    return "[" + ", ".join(entry(k + 2, *e) for k, e in enumerate(entries)) + "]"


SWIPE = _detail((P1, _at(1, 10, 1), {"isZan": "1"}), (P1, _at(1, 10, 2), {"isViewComment": "1"}),
                (V1, _at(1, 10, 3), {}))
WORKED = [
    Imp(A, _at(1, 10), 1, card=V1, click=True, like=True, view_comment=True, view_time=20.0, detail=SWIPE),
    Imp(A, _at(1, 10), 2, card=P1),
    Imp(A, _at(1, 10), 3, card=P1),
    Imp(A, _at(1, 10, 20), 1, card=P1, click=True, share=True, homepage=True, view_time=5.0),
    Imp(A, _at(3, 20), 1, card=V1, click=True, comment=True, view_time=8.0),
    Imp(A, _at(3, 20), 2, card=X9),
    Imp(B, _at(1, 12)),
]
# Day 14, 23:55: P1 opened, its swipe-down list has one entry before midnight and a liked one after it (dt 15).
LATE = Imp(A, _at(14, 23, 55), 1, card=P1, click=True, view_time=3.0,
           detail=_detail((V1, _at(14, 23, 58), {}), (V1, _at(15, 0, 5), {"isZan": "1"})))
LABEL_PERIOD = [Imp(A, _at(15, 0, 10), 1, card=P1),  # 15 minutes after LATE: would continue its session
                Imp(A, _at(15, 9), 1, card=V1, click=True, like=True, view_time=9.0)]
EXPECTED = {  # session -> counts in EVENT_COLUMNS order
    1: (4, 2, 1, 1, 0, 1, 1, 3, 2, 1, 1),
    2: (2, 1, 0, 0, 1, 0, 0, 0, 0, 1, 1),
}


def _build(tmp_path, lake, con, imps):
    src = tmp_path / "src"
    write_impressions(src, imps)
    write_snapshots(src, [A, B])
    quoted = ",".join(f'"{c}"' for c in fmt.MLOG_DEMOGRAPHICS.header)
    (src / "mlog_demographics.csv").write_text(
        f'{quoted}\n"{V1}","AFBHAHLH","AFBHAHLH","HCHC",20,2,"5001,5010,5054",-1\n'
        f'"{P1}","GC","GC","HCHC",20,1,"5000,5006,5036",-1\n'
    )
    ingest_folder(con, src, lake, stems={"impression_data", "mlog_demographics"})
    for d in range(1, 31):
        cohorts.build_user_day_activity(con, lake, CALENDAR.day(d))
    cohorts.build_cohort_users(con, lake, CALENDAR, [COHORT])
    window.build_window_impressions(con, lake, CALENDAR, [COHORT])
    sessions.build_sessions(con, lake, CALENDAR, [COHORT], gap_minutes=30)
    counts = session_events.build_session_events(con, lake, CALENDAR, [COHORT])
    per_session = rows(con, lake.cohort("session_events", COHORT), "ORDER BY user_id, global_session_idx")
    per_day = rows(con, lake.cohort("user_day_events", COHORT), "ORDER BY user_id, day_num")
    return counts, per_session, per_day


def _counts(row: dict) -> tuple[int, ...]:
    return tuple(row[c] for c in EVENT_COLUMNS)


def test_vocabulary_is_documented_and_unique():
    assert len(set(EVENT_COLUMNS)) == len(EVENT_COLUMNS) == len(session_events.EVENT_TYPES)
    assert all(definition for _, definition in session_events.EVENT_TYPES)


def test_worked_two_session_example(tmp_path, lake, con):
    counts, per_session, _ = _build(tmp_path, lake, con, WORKED)
    a = [r for r in per_session if r["user_id"] == A]
    assert [r["global_session_idx"] for r in a] == [1, 2]
    assert [r["day_num"] for r in a] == [1, 3]
    for r in a:
        assert _counts(r) == EXPECTED[r["global_session_idx"]], r["global_session_idx"]
    assert a[0]["last_event_ms"] == Imp(A, _at(1, 10, 20)).epoch_ms  # the 10:20 request, after the 10:03 entry
    b = [r for r in per_session if r["user_id"] == B]
    assert _counts(b[0]) == (1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)  # a card missing from the card table is no video
    assert counts[0] == {COHORT: 3}


def test_same_session_keys_as_the_sessions_table(tmp_path, lake, con):
    _, per_session, _ = _build(tmp_path, lake, con, WORKED)
    keys = con.execute(
        "SELECT user_id, global_session_idx, total_impressions FROM read_parquet($p) ORDER BY ALL",
        {"p": str(lake.cohort("sessions", COHORT))},
    ).fetchall()
    assert keys == [(r["user_id"], r["global_session_idx"], r["impressions"]) for r in per_session]
    assert session_events.check_session_events(con, lake, CALENDAR, [COHORT]).passed


def test_daily_counts_are_zero_filled_over_the_window(tmp_path, lake, con):
    counts, _, per_day = _build(tmp_path, lake, con, WORKED)
    assert counts[1] == {COHORT: 2 * 14}
    a = [r for r in per_day if r["user_id"] == A]
    assert [r["day_num"] for r in a] == list(range(1, 15))
    assert [r["dt"] for r in a] == list(range(1, 15))
    assert _counts(a[0]) == EXPECTED[1] and _counts(a[2]) == EXPECTED[2]
    zero = (0,) * len(EVENT_COLUMNS)
    assert all(_counts(r) == zero for r in a if r["day_num"] not in (1, 3))
    b = [r for r in per_day if r["user_id"] == B]
    assert len(b) == 14 and sum(r["impressions"] for r in b) == 1


def test_label_period_changes_nothing(tmp_path, lake, con):
    _, base_sessions, base_days = _build(tmp_path / "base", lake, con, [*WORKED, LATE])
    late = [r for r in base_sessions if r["user_id"] == A][-1]
    # Only the swipe-down entry logged before local midnight counts; the liked one after it is label period.
    assert (late["day_num"], late["clicks"], late["swipe_views"], late["swipe_actions"]) == (14, 1, 1, 0)
    label_start_ms = Imp(A, _at(15, 0)).epoch_ms
    assert late["last_event_ms"] == Imp(A, _at(14, 23, 58)).epoch_ms < label_start_ms

    other = type(lake)(tmp_path / "lake_with_label_period")
    _, with_sessions, with_days = _build(tmp_path / "with", other, con, [*WORKED, LATE, *LABEL_PERIOD])
    assert with_sessions == base_sessions
    assert with_days == base_days
    assert session_events.check_session_events(con, other, CALENDAR, [COHORT]).passed
