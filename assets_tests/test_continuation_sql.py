"""Session continuation tables against hand-computed cases: the labels at exactly 10/20/30 minutes before a
session's end and across a session boundary, censoring at the window's end, features that never read
past their request, and the per-user sample."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest
from conftest import CALENDAR, SHANGHAI, Imp, tid
from pipeline_helpers import cohorts_from_impressions, rows

from churn_dagster.transforms import continuation, labels, sessions
from churn_dagster.transforms.continuation import ExampleSampling

# The fixture's users and cards, as IDs of the published grammar (see conftest.tid).
A, B, C, H, L = (tid(u) for u in "ABCHL")

COHORT = CALENDAR.day(1)
LABELS = ("continues_10min", "continues_20min", "continues_30min")

# User A (Asia/Shanghai). Session 1: requests at 10:00, 10:05, 10:10, 10:20, 10:20:01, 10:30 (its end).
# Session 2 starts 31 minutes later at 11:01 and ends at 11:26; session 3 starts 31 minutes after that.
USER_A = [
    Imp(A, "2019-11-01 10:00:00", 1), Imp(A, "2019-11-01 10:00:00", 2, click=True, view_time=30.0),
    Imp(A, "2019-11-01 10:05:00", 1, click=True, like=True),
    Imp(A, "2019-11-01 10:10:00", 1), Imp(A, "2019-11-01 10:10:00", 2), Imp(A, "2019-11-01 10:10:00", 3),
    Imp(A, "2019-11-01 10:20:00", 1, click=True, view_comment=True),
    Imp(A, "2019-11-01 10:20:01", 2),
    Imp(A, "2019-11-01 10:30:00", 1),
    Imp(A, "2019-11-01 11:01:00", 1, click=True),
    Imp(A, "2019-11-01 11:26:00", 1),
    Imp(A, "2019-11-01 11:57:00", 1), Imp(A, "2019-11-01 11:57:00", 2),
]
# Expected (continues 10, 20, 30) per request time, by hand from the session ends 10:30 and 11:26.
EXPECTED = {
    "10:00:00": (True, True, True),     # 30 min before the end: exactly 30 counts
    "10:05:00": (True, True, False),    # 25 min
    "10:10:00": (True, True, False),    # exactly 20 min
    "10:20:00": (True, False, False),   # exactly 10 min
    "10:20:01": (False, False, False),  # 9 min 59 s
    "10:30:00": (False, False, False),  # the last request
    "11:01:00": (True, True, False),    # 25 min before a 31-minute gap: the next session does not count
    "11:26:00": (False, False, False),
    "11:57:00": (False, False, False),
}
# The last observation day (dt 14) ends at midnight before 15 Nov. B's session ending at 23:30:00 is complete
# (a 30-minute gap would have split it anyway); C's, ending at 23:30:01, may go on after midnight.
USER_B = [
    Imp(B, "2019-11-01 09:00:00", 1), Imp(B, "2019-11-14 23:20:00", 1), Imp(B, "2019-11-14 23:30:00", 1),
    Imp(C, "2019-11-01 09:00:00", 1), Imp(C, "2019-11-14 23:30:01", 1, click=True, view_time=5.0),
]


def _build(tmp_path, lake, con, imps, sampling=ExampleSampling()):
    cohorts_from_impressions(tmp_path, lake, con, imps, [COHORT])
    labels.build_labels(con, lake, CALENDAR, [COHORT], labels.SplitSettings())
    sessions.build_sessions(con, lake, CALENDAR, [COHORT], gap_minutes=30)
    continuation.build_requests(con, lake, CALENDAR, [COHORT], gap_minutes=30)
    continuation.build_examples(con, lake, [COHORT], sampling)
    return rows(con, lake.cohort("continuation_requests", COHORT), "ORDER BY user_id, request_ms")


def _local_at(ms: int, fmt: str = "%H:%M:%S") -> str:
    return datetime.fromtimestamp(ms / 1000, SHANGHAI).strftime(fmt)


def _local(row) -> str:
    return _local_at(row["request_ms"])


def test_labels_at_exactly_the_horizons_and_across_a_session_boundary(tmp_path, lake, con):
    request_rows = _build(tmp_path, lake, con, USER_A)
    got = {_local(r): tuple(r[c] for c in LABELS) for r in request_rows}
    assert got == EXPECTED
    assert [r["global_session_idx"] for r in request_rows] == [1] * 6 + [2, 2, 3]
    at_1101 = next(r for r in request_rows if _local(r) == "11:01:00")
    assert at_1101["remaining_min"] == pytest.approx(25.0)


def test_prefix_features_by_hand(tmp_path, lake, con):
    by_time = {_local(r): r for r in _build(tmp_path, lake, con, USER_A)}
    first, at_1010, at_1020 = by_time["10:00:00"], by_time["10:10:00"], by_time["10:20:00"]
    # The first request: its own 2 cards, no clicks known yet (its click comes after it).
    assert (first["request_idx"], first["cards_so_far"], first["clicks_so_far"], first["prev_request_clicks"]) == (1, 2, 0, 0)
    assert first["minutes_since_last_click"] is None and first["elapsed_min"] == 0
    # 10:10: cards 2 + 1 + 3; clicks of 10:00 and 10:05; the like at 10:05 is an action; last click 10:05.
    assert (at_1010["cards_so_far"], at_1010["clicks_so_far"], at_1010["actions_so_far"]) == (6, 2, 1)
    assert (at_1010["prev_request_clicks"], at_1010["prev_request_actions"]) == (1, 1)
    assert at_1010["minutes_since_last_click"] == pytest.approx(5.0) and at_1010["elapsed_min"] == pytest.approx(10.0)
    assert at_1020["gap_prev_request_min"] == pytest.approx(10.0) and at_1020["clicks_so_far"] == 2
    # Session 2 at 11:01 has the history of session 1: 6 requests, 9 cards, 3 clicks, 30 minutes long.
    second = by_time["11:01:00"]
    assert (second["prior_sessions"], second["prior_requests"], second["prior_cards"], second["prior_clicks"]) == (1, 6, 9, 3)
    assert second["prior_mean_session_min"] == pytest.approx(30.0) and second["prior_sessions_10min"] == 1
    assert second["minutes_since_prev_session"] == pytest.approx(31.0) and second["clicks_so_far"] == 0
    assert (first["day_num"], first["weekday_sin"]) == (1, pytest.approx(-0.4338837))  # Friday = 4 of Mon..Sun
    assert first["hour_sin"] == pytest.approx(0.5) and first["hour_cos"] == pytest.approx(-0.8660254)  # 10:00


def _future_changed(imps: list[Imp], cut_ms: int) -> list[Imp]:
    """Everything after ``cut_ms`` replaced (other times, other actions, one more session), and the actions on
    the cards of the request at ``cut_ms`` itself flipped: none of it is known at that request."""
    kept = [dataclasses.replace(i, click=not i.click, like=False, view_time=None) if i.epoch_ms == cut_ms else i
            for i in imps if i.epoch_ms <= cut_ms]
    user, at = kept[0].user, lambda ms: _local_at(ms, "%Y-%m-%d %H:%M:%S")  # noqa: E731
    return kept + [Imp(user, at(cut_ms + 60_000), 5, click=True, share=True), Imp(user, at(cut_ms + 20 * 60_000), 1),
                   Imp(user, at(cut_ms + 45 * 60_000), 1), Imp(user, "2019-11-03 20:00:00", 1, click=True)]


FEATURES = ("request_idx", "elapsed_min", "gap_prev_request_min", "cards", "max_position", "cards_so_far",
            "clicks_so_far", "actions_so_far", "minutes_since_last_click", "prev_request_clicks",
            "prev_request_actions", "hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "day_num",
            "prior_sessions", "prior_requests", "prior_cards", "prior_clicks", "prior_mean_session_min",
            "prior_sessions_10min", "minutes_since_prev_session", "global_session_idx", "session_start_ms")


@pytest.mark.parametrize("request_time", ["10:05:00", "10:20:00", "11:01:00", "11:26:00"])
def test_no_feature_reads_anything_after_its_request(tmp_path, lake, con, request_time):
    base = {_local(r): r for r in _build(tmp_path / "base", lake, con, USER_A)}
    cut = base[request_time]["request_ms"]
    changed_lake = dataclasses.replace(lake, root=tmp_path / "changed_lake")
    changed = {_local(r): r for r in _build(tmp_path / "changed", changed_lake, con, _future_changed(USER_A, cut))}
    assert {f: changed[request_time][f] for f in FEATURES} == {f: base[request_time][f] for f in FEATURES}
    # The change reached the request's session and labels, so a leak would show.
    assert changed[request_time]["session_end_ms"] != base[request_time]["session_end_ms"]
    assert [changed[request_time][c] for c in LABELS] != [base[request_time][c] for c in LABELS]


def test_censored_sessions_never_become_examples(tmp_path, lake, con):
    request_rows = _build(tmp_path, lake, con, USER_B)
    censored = {(r["user_id"], _local(r)): r["censored"] for r in request_rows}
    assert censored == {(B, "09:00:00"): False, (B, "23:20:00"): False, (B, "23:30:00"): False,
                        (C, "09:00:00"): False, (C, "23:30:01"): True}
    examples = rows(con, lake.cohort("continuation_examples", COHORT))
    assert sorted((e["user_id"], _local(e)) for e in examples) == [
        (B, "09:00:00"), (B, "23:20:00"), (B, "23:30:00"), (C, "09:00:00")]
    assert {e["split"] for e in examples} <= {"train", "validation", "test"}


def _heavy_users() -> list[Imp]:
    """User H with 50 requests (one card each, 2 minutes apart), user L with 3."""
    heavy = [Imp(H, f"2019-11-0{1 + k // 25} {10 + (k % 25) // 30}:{2 * (k % 25):02d}:00") for k in range(50)]
    return heavy + [Imp(L, f"2019-11-01 1{k}:00:00") for k in range(3)]


def test_the_per_user_cap_holds_and_is_deterministic(tmp_path, lake, con):
    _build(tmp_path, lake, con, _heavy_users(), ExampleSampling(max_requests_per_user=10, seed=7))
    first = rows(con, lake.cohort("continuation_examples", COHORT), "ORDER BY user_id, request_ms")
    assert sum(e["user_id"] == H for e in first) == 10 and sum(e["user_id"] == L for e in first) == 3
    continuation.build_examples(con, lake, [COHORT], ExampleSampling(max_requests_per_user=10, seed=7))
    again = rows(con, lake.cohort("continuation_examples", COHORT), "ORDER BY user_id, request_ms")
    assert [e["request_ms"] for e in again] == [e["request_ms"] for e in first]
    continuation.build_examples(con, lake, [COHORT], ExampleSampling(max_requests_per_user=10, seed=8))
    other_seed = rows(con, lake.cohort("continuation_examples", COHORT), "ORDER BY user_id, request_ms")
    assert [e["request_ms"] for e in other_seed] != [e["request_ms"] for e in first]
    heavy_times = [e["request_ms"] for e in first if e["user_id"] == H]
    assert max(heavy_times) - min(heavy_times) > 24 * 3600 * 1000  # spread over both days, not the first 10


def test_the_checks_pass_on_good_tables_and_count_tampering(tmp_path, lake, con):
    _build(tmp_path, lake, con, USER_A + USER_B + _heavy_users(), ExampleSampling(max_requests_per_user=4))
    sampling = ExampleSampling(max_requests_per_user=4)
    assert continuation.check_examples(con, lake, CALENDAR, [COHORT], sampling).passed
    assert continuation.sessions_disagreeing(con, lake, [COHORT])[0] == 0
    path = lake.cohort("continuation_examples", COHORT)
    con.execute(f"""COPY (SELECT * REPLACE (CASE WHEN request_idx = 2 THEN clicks_so_far + 1 ELSE clicks_so_far END
                                              AS clicks_so_far, continues_10min OR continues_30min AS continues_10min,
                                            continues_20min OR request_idx = 1 AS continues_20min)
                          FROM read_parquet('{path}')) TO '{path}' (FORMAT parquet)""")
    tampered = continuation.check_examples(con, lake, CALENDAR, [COHORT], dataclasses.replace(sampling, max_requests_per_user=3))
    assert tampered.over_cap == 2 and tampered.future_inputs > 0 and tampered.unmonotone > 0
    assert tampered.label_mismatches > 0 and not tampered.passed
