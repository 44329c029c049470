"""Session continuation tables against hand-computed cases: the labels at exactly 10/20/30 minutes before a
session's end and across a session boundary, clicks counted only once the log proves them, censoring at the
window's end that ignores what the session did, features that never read past their request, and the
per-user sample."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime

import pytest
from conftest import CALENDAR, SHANGHAI, Imp, tid
from continuation_helpers import swipe_list
from pipeline_helpers import cohorts_from_impressions, rows

from churn_dagster.stages.cohorts.sql import labels
from churn_dagster.stages.features.sql import sessions
from churn_dagster.studies.continuation.sql import checks as continuation_checks
from churn_dagster.studies.continuation.sql import examples as continuation
from churn_dagster.studies.continuation.sql.examples import ExampleSampling

# The fixture's users and cards, as IDs of the published grammar (see conftest.tid).
A, B, C, G, H, L, P, S, T = (tid(u) for u in "ABCGHLPST")

COHORT = CALENDAR.day(1)
LABELS = ("continues_10min", "continues_20min", "continues_30min")

# User A (Asia/Shanghai). Session 1: requests at 10:00, 10:05, 10:10, 10:20, 10:20:01, 10:30 (its end).
# Session 2 starts 31 minutes later at 11:01 and ends at 11:26; session 3 starts 31 minutes after that.
# The clicked cards of 10:00 and 10:05 were swiped under from 10:01 and 10:12; the clicks at 10:20 and 11:01 have
# no swipe-down list, so nothing in the log says when they happened.
USER_A = [
    Imp(A, "2019-11-01 10:00:00", 1),
    Imp(A, "2019-11-01 10:00:00", 2, click=True, view_time=30.0, detail=swipe_list("2019-11-01 10:01:00")),
    Imp(A, "2019-11-01 10:05:00", 1, click=True, like=True,
        detail=swipe_list("2019-11-01 10:12:00", "2019-11-01 10:13:00")),
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
# The last observation day (dt 14) ends at midnight before 15 Nov (W); a request is kept iff it lies at least
# 30 + 30 minutes before W, i.e. at 23:00:00 or earlier, whatever its session did. S stops at 22:55, G goes on
# from 22:55 to 23:45: the old rule (censored iff the session's last request is within 30 minutes of W) kept S's
# 22:55 and T's 23:15 only because their sessions stopped there, and dropped G's 22:55 because its session went on.
CENSORING = [
    Imp(u, "2019-11-01 09:00:00") for u in (B, C, S, T, G)] + [
    Imp(B, "2019-11-14 23:00:00"), Imp(C, "2019-11-14 23:00:01", click=True, view_time=5.0),
    Imp(S, "2019-11-14 22:55:00"), Imp(T, "2019-11-14 23:15:00"),
    Imp(G, "2019-11-14 22:55:00"), Imp(G, "2019-11-14 23:20:00"), Imp(G, "2019-11-14 23:45:00"),
]
# (user, local time) -> (censored now, censored by the old rule, labels 10/20/30 as the window shows them)
CENSORED = {
    (B, "23:00:00"): (False, False, (False, False, False)),  # exactly one hour before W
    (C, "23:00:01"): (True, False, (False, False, False)),
    (S, "22:55:00"): (False, False, (False, False, False)),
    (T, "23:15:00"): (True, False, (False, False, False)),   # kept by the old rule because it stopped
    (G, "22:55:00"): (False, True, (True, True, True)),      # dropped by the old rule because it went on
    (G, "23:20:00"): (True, True, (True, True, False)),
    (G, "23:45:00"): (True, True, (False, False, False)),
}


def _build(tmp_path, lake, con, imps, sampling=ExampleSampling()):
    cohorts_from_impressions(tmp_path, lake, con, imps, [COHORT])
    labels.build_splits(con, lake, [COHORT], labels.SplitSettings())
    labels.build_labels(con, lake, CALENDAR, [COHORT])
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
    # 10:10: cards 2 + 1 + 3; the click of 10:00 is proven (swiped under at 10:01), that of 10:05 not yet (10:12).
    assert (at_1010["cards_so_far"], at_1010["clicks_so_far"], at_1010["prev_request_clicks"]) == (6, 1, 0)
    assert at_1010["minutes_since_last_click"] == pytest.approx(10.0) and at_1010["elapsed_min"] == pytest.approx(10.0)
    # 10:20: the click of 10:05 is proven by now; the last proven click's card was shown at 10:05.
    assert at_1020["gap_prev_request_min"] == pytest.approx(10.0) and at_1020["clicks_so_far"] == 2
    assert at_1020["minutes_since_last_click"] == pytest.approx(15.0) and at_1020["prev_request_clicks"] == 0
    # 10:20:01 and 10:30: the click at 10:20 has no swipe-down list, so it never counts.
    assert by_time["10:20:01"]["clicks_so_far"] == by_time["10:30:00"]["clicks_so_far"] == 2
    # Session 2 at 11:01 has the history of session 1: 6 requests, 9 cards, 2 proven clicks, 30 minutes long.
    second = by_time["11:01:00"]
    assert (second["prior_sessions"], second["prior_requests"], second["prior_cards"], second["prior_clicks"]) == (1, 6, 9, 2)
    assert second["prior_mean_session_min"] == pytest.approx(30.0) and second["prior_sessions_10min"] == 1
    assert second["minutes_since_prev_session"] == pytest.approx(31.0) and second["clicks_so_far"] == 0
    assert (first["day_num"], first["weekday_sin"]) == (1, pytest.approx(-0.4338837))  # Friday = 4 of Mon..Sun
    assert first["hour_sin"] == pytest.approx(0.5) and first["hour_cos"] == pytest.approx(-0.8660254)  # 10:00


# User P: at 10:01:00 three cards are clicked: one without a swipe-down list, one swiped under in the same second
# (10:01:00), one from 10:01:01; the next request comes at 10:01:01, one second later. At 11:00 a new session.
# The card of 10:05 is swiped under from 11:00:30, after session 2 has started.
PROOFS = [
    Imp(P, "2019-11-01 10:00:00", 1),
    Imp(P, "2019-11-01 10:00:00", 2, click=True, detail=swipe_list("2019-11-01 10:00:40")),
    Imp(P, "2019-11-01 10:01:00", 1, click=True, view_time=8.0),
    Imp(P, "2019-11-01 10:01:00", 2, click=True, detail=swipe_list("2019-11-01 10:01:00")),
    Imp(P, "2019-11-01 10:01:00", 3, click=True, detail=swipe_list("2019-11-01 10:01:01", "2019-11-01 10:01:30")),
    Imp(P, "2019-11-01 10:01:01", 1),
    Imp(P, "2019-11-01 10:05:00", 1, click=True, detail=swipe_list("2019-11-01 11:00:30")),
    Imp(P, "2019-11-01 11:00:00", 1), Imp(P, "2019-11-01 11:01:00", 1),
]


def test_a_click_counts_only_once_the_log_proves_it_happened_before_the_request(tmp_path, lake, con):
    got = {_local(r): (r["clicks_so_far"], r["prev_request_clicks"], r["minutes_since_last_click"], r["prior_clicks"])
           for r in _build(tmp_path, lake, con, PROOFS)}
    assert got == {
        "10:00:00": (0, 0, None, 0),
        # The click of 10:00 is proven at 10:00:40.
        "10:01:00": (1, 1, pytest.approx(1.0), 0),
        # Of the three clicks shown 1 s before: the one without a list does not count, the one swiped under at
        # 10:01:00 does, the one first swiped at 10:01:01 (the request's own second) does not.
        "10:01:01": (2, 1, pytest.approx(1 / 60), 0),
        # By 10:05 the third is proven too; the click without a list never is.
        "10:05:00": (3, 0, pytest.approx(4.0), 0),
        # Session 2 counts the clicks of session 1 proven before it started: not the one swiped under at 11:00:30.
        "11:00:00": (0, 0, None, 3),
        "11:01:00": (0, 0, None, 3),
    }


def _proven_by(i: Imp, ms: int) -> bool:
    """Whether the log proves that card ``i`` was clicked before ``ms``: a swipe-down entry logged earlier."""
    logged = [int(t) for t in re.findall(r"'logtime': '(\d+)'", i.detail or "")]
    return i.click and bool(logged) and max(i.epoch_ms, min(logged)) < ms


def _future_changed(imps: list[Imp], cut_ms: int) -> list[Imp]:
    """Everything not known at the request at ``cut_ms`` changed: what comes after it (other times, other actions,
    one more session), the actions on its own cards, the actions besides a click on earlier cards (like and
    comment view flipped), and every earlier card whose click the log does not prove before the request clicked,
    with a swipe-down list logged from the request's second on."""
    user, at = imps[0].user, lambda ms: _local_at(ms, "%Y-%m-%d %H:%M:%S")  # noqa: E731
    later_swipes = swipe_list(at(cut_ms), at(cut_ms + 60_000))

    def changed(i: Imp) -> Imp:
        if i.epoch_ms == cut_ms:
            return dataclasses.replace(i, click=not i.click, like=False, view_comment=False, view_time=None,
                                       detail=None)
        if _proven_by(i, cut_ms):
            return dataclasses.replace(i, like=not i.like, view_comment=not i.view_comment)
        return dataclasses.replace(i, click=True, like=not i.like, detail=later_swipes)

    kept = [changed(i) for i in imps if i.epoch_ms <= cut_ms]
    return kept + [Imp(user, at(cut_ms + 60_000), 5, click=True, share=True), Imp(user, at(cut_ms + 20 * 60_000), 1),
                   Imp(user, at(cut_ms + 45 * 60_000), 1), Imp(user, "2019-11-03 20:00:00", 1, click=True)]


FEATURES = ("request_idx", "elapsed_min", "gap_prev_request_min", "cards", "max_position", "cards_so_far",
            "clicks_so_far", "minutes_since_last_click", "prev_request_clicks", "hour_sin", "hour_cos",
            "weekday_sin", "weekday_cos", "day_num", "prior_sessions", "prior_requests", "prior_cards",
            "prior_clicks", "prior_mean_session_min", "prior_sessions_10min", "minutes_since_prev_session",
            "global_session_idx", "session_start_ms")


@pytest.mark.parametrize(("imps", "request_time"), [
    (USER_A, "10:05:00"), (USER_A, "10:10:00"), (USER_A, "10:20:00"), (USER_A, "10:20:01"), (USER_A, "11:01:00"),
    (USER_A, "11:26:00"), (PROOFS, "10:01:01"), (PROOFS, "10:05:00"), (PROOFS, "11:00:00")])
def test_no_feature_reads_anything_not_known_at_its_request(tmp_path, lake, con, imps, request_time):
    base = {_local(r): r for r in _build(tmp_path / "base", lake, con, imps)}
    cut = base[request_time]["request_ms"]
    changed_lake = dataclasses.replace(lake, root=tmp_path / "changed_lake")
    changed = {_local(r): r for r in _build(tmp_path / "changed", changed_lake, con, _future_changed(imps, cut))}
    assert {f: changed[request_time][f] for f in FEATURES} == {f: base[request_time][f] for f in FEATURES}
    # The change reached the request's session and labels, so a leak would show.
    assert changed[request_time]["session_end_ms"] != base[request_time]["session_end_ms"]
    assert [changed[request_time][c] for c in LABELS] != [base[request_time][c] for c in LABELS]


def test_the_features_are_exactly_the_ones_known_at_the_request(tmp_path, lake, con):
    """Every column of the requests table is a feature that the leak test above varies the future of, a label
    or part of the outcome, or bookkeeping: a new column has to be placed in one of them."""
    columns = set(_build(tmp_path, lake, con, USER_A)[0])
    outcome = {"session_end_ms", "remaining_min", "censored", *LABELS}
    assert columns == set(FEATURES) | outcome | {"user_id", "cohort_day", "request_ms"}


def test_censoring_ignores_what_the_session_did(tmp_path, lake, con):
    request_rows = _build(tmp_path, lake, con, CENSORING)
    late = {(r["user_id"], _local(r)): r for r in request_rows if _local(r) != "09:00:00"}
    assert {k: (r["censored"], tuple(r[c] for c in LABELS)) for k, r in late.items()} == {
        k: (now, labels) for k, (now, _, labels) in CENSORED.items()}
    # The old rule judged by the session's last request: it disagrees exactly where the session's fate decided.
    window_end = Imp("x", "2019-11-15 00:00:00").epoch_ms
    old = {k: window_end - r["session_end_ms"] < 30 * 60_000 for k, r in late.items()}
    assert old == {k: was for k, (_, was, _) in CENSORED.items()}
    assert all(not r["censored"] for r in request_rows if _local(r) == "09:00:00")
    examples = rows(con, lake.cohort("continuation_examples", COHORT))
    assert sorted((e["user_id"], _local(e)) for e in examples) == sorted(
        [(u, "09:00:00") for u in (B, C, S, T, G)] + [(B, "23:00:00"), (G, "22:55:00"), (S, "22:55:00")])
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
    _build(tmp_path, lake, con, USER_A + PROOFS + CENSORING + _heavy_users(), ExampleSampling(max_requests_per_user=4))
    sampling = ExampleSampling(max_requests_per_user=4)
    assert continuation_checks.check_examples(con, lake, CALENDAR, [COHORT], sampling, gap_minutes=30).passed
    assert continuation_checks.sessions_disagreeing(con, lake, [COHORT])[0] == 0
    path = lake.cohort("continuation_examples", COHORT)
    # One more click at every second request (as counting P's unproven click of 10:01:00 at 10:01:01 would add).
    con.execute(f"""COPY (SELECT * REPLACE (CASE WHEN request_idx = 2 THEN clicks_so_far + 1 ELSE clicks_so_far END
                                              AS clicks_so_far, continues_10min OR continues_30min AS continues_10min,
                                            continues_20min OR request_idx = 1 AS continues_20min)
                          FROM read_parquet('{path}')) TO '{path}' (FORMAT parquet)""")
    tampered = continuation_checks.check_examples(con, lake, CALENDAR, [COHORT],
                                                  dataclasses.replace(sampling, max_requests_per_user=3), 30)
    assert tampered.over_cap == 3 and tampered.future_inputs > 0 and tampered.unmonotone > 0
    assert tampered.label_mismatches > 0 and tampered.too_late == 0 and not tampered.passed


def test_the_window_check_recounts_censoring_from_the_calendar(tmp_path, lake, con):
    """A request flagged uncensored though it lies less than an hour before the window's end is found, whatever
    its flag and its labels say; with a 20-minute gap the same requests pass."""
    _build(tmp_path, lake, con, CENSORING)
    path = lake.cohort("continuation_examples", COHORT)
    requests = lake.cohort("continuation_requests", COHORT)
    con.execute(f"""COPY (SELECT * FROM read_parquet('{path}')
                          UNION ALL BY NAME
                          SELECT r.* REPLACE (false AS censored), 'train' AS split, 0 AS sample_rank
                          FROM read_parquet('{requests}') r WHERE user_id = '{C}' AND censored)
                    TO '{path}' (FORMAT parquet)""")
    sampling = ExampleSampling()
    found = continuation_checks.check_examples(con, lake, CALENDAR, [COHORT], sampling, gap_minutes=30)
    assert (found.too_late, found.label_mismatches, found.future_inputs) == (1, 0, 0)
    # C's 23:00:01 lies 59 min 59 s before midnight: enough for 30 + 20 minutes, not for 30 + 30.
    assert continuation_checks.check_examples(con, lake, CALENDAR, [COHORT], sampling, gap_minutes=20).too_late == 0
