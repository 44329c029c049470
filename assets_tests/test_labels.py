"""Label-period targets against hand computation: churn, F, I, Q with P95 capping, score and level bounds."""

from __future__ import annotations

import pytest
from conftest import CALENDAR, Imp, tid
from pipeline_helpers import cohorts_from_impressions, rows

from churn_dagster.domain.engagement import (
    Thresholds,
    ThresholdsUndefined,
    fit_thresholds,
    levels,
    score_components,
)
from churn_dagster.stages.cohorts.sql import labels
from churn_dagster.stages.cohorts.sql.labels import SplitSettings

# The fixture's users and cards, as IDs of the published grammar (see conftest.tid).
A, B, C, D, E = (tid(u) for u in "ABCDE")

COHORT = CALENDAR.day(1)
ALL_TRAIN = SplitSettings(train_fraction=1.0, validation_fraction=0.0, seed=1)


def _label_rows(tmp_path, lake, con, imps, split=ALL_TRAIN):
    cohorts_from_impressions(tmp_path, lake, con, imps, [COHORT])
    labels.build_splits(con, lake, [COHORT], split)
    _, thresholds = labels.build_labels(con, lake, CALENDAR, [COHORT])
    by_user = {r["user_id"]: r for r in rows(con, lake.cohort("label_scores", COHORT))}
    return by_user, thresholds[COHORT]


def _day(dt: int, hh: int = 12, mm: int = 0) -> str:
    return f"{CALENDAR.day(dt).isoformat()} {hh:02d}:{mm:02d}:00"


def test_scores_by_hand(tmp_path, lake, con):
    imps = [Imp(u, _day(1)) for u in (A, B, C, D, E)]  # everyone starts on day 1
    # Label period of cohort day 1 is dt 15..21.
    # B: 2 impressions on 1 day, one click with a like: Qraw = (1 + 2*1) / 2 = 1.5
    imps += [Imp(B, _day(15), 1, click=True, like=True, view_time=3.0), Imp(B, _day(15), 2)]
    # C: 4 impressions over 4 days, no action: Qraw = 0
    imps += [Imp(C, _day(d)) for d in (15, 16, 17, 18)]
    # D: 7 days x 2 impressions = 14, one click + one share + one comment: Qraw = (1 + 3 + 4) / 14
    imps += [Imp(D, _day(d, 9), 1) for d in range(15, 22)] + [Imp(D, _day(d, 10), 2) for d in range(16, 22)]
    imps += [Imp(D, _day(15, 10), 2, click=True, share=True, comment=True, view_time=5.0)]
    # E: one impression on day 14 (observation) and one on day 22 (after the label period): churned
    imps += [Imp(E, _day(14)), Imp(E, _day(22))]
    by_user, t = _label_rows(tmp_path, lake, con, imps)

    # P95 over the active training users B, C, D (linear interpolation, as quantile_cont):
    # impressions [2, 4, 14] -> position 0.95 * 2 = 1.9 -> 4 + 0.9 * 10 = 13
    # Qraw [0, 8/14, 1.5] -> 8/14 + 0.9 * (1.5 - 8/14)
    assert t.p95_impressions == pytest.approx(13.0)
    p95_q = 8 / 14 + 0.9 * (1.5 - 8 / 14)
    assert t.p95_quality_raw == pytest.approx(p95_q)
    assert t.fitted_on_users == 3

    for user in (A, E):
        assert by_user[user]["churned"] and by_user[user]["score"] == 0 and by_user[user]["level"] == 0
    b, c, d = by_user[B], by_user[C], by_user[D]
    assert (b["frequency"], b["intensity"], b["quality"]) == pytest.approx((1 / 7, 2 / 13, 1.0))  # Q capped at 1
    assert b["score"] == pytest.approx(0.3 / 7 + 0.4 * 2 / 13 + 0.3)
    assert b["level"] == 2  # 0.3616 is in (0.3, 0.5]
    assert c["score"] == pytest.approx(0.3 * 4 / 7 + 0.4 * 4 / 13)
    assert c["level"] == 1  # 0.2945 is in (0, 0.3]
    assert d["intensity"] == 1.0  # 14 impressions capped at the P95 of 13
    assert d["score"] == pytest.approx(0.3 + 0.4 + 0.3 * (8 / 14) / p95_q)
    assert d["level"] == 4  # above 0.7: Champion
    assert not d["churned"] and d["active_days"] == 7


@pytest.mark.parametrize(
    ("score", "churned", "level"),
    [(0.0, True, 0), (0.0001, False, 1), (0.3, False, 1), (0.30001, False, 2), (0.5, False, 2),
     (0.50001, False, 3), (0.7, False, 3), (0.70001, False, 4), (1.0, False, 4)],
)
def test_level_boundaries(score, churned, level):
    assert levels([score], [churned])[0] == level


def test_a_score_of_exactly_07_is_engaged_not_champion():
    # F = 5/7, I = 7/7, Q = 2/7 gives 0.3 * 5/7 + 0.4 + 0.3 * 2/7 = 0.7 exactly, which floating point computes
    # as 0.7000000000000001: the score is rounded before its level is taken, so this user is Engaged.
    t = Thresholds(7.0, 1.0, 1, "by hand")
    got = score_components([5 / 7], [7], [2 / 7], [False], t)
    assert (got["score"][0], got["level"][0]) == (0.7, 3)


def test_zero_p95_quality_maps_any_action_to_one():
    t = Thresholds(10.0, 0.0, 2, "by hand")
    got = score_components([1 / 7, 1 / 7], [10, 10], [0.0, 0.1], [False, False], t)
    assert list(got["quality"]) == [0.0, 1.0]


def test_thresholds_are_fit_on_active_users_only_and_undefined_without_any():
    t = fit_thresholds([0, 2, 4, 14], [0.0, 1.5, 0.0, 8 / 14], [True, False, False, False], "four users")
    assert (t.p95_impressions, t.fitted_on_users) == (pytest.approx(13.0), 3)  # the churned user's 0 is ignored
    with pytest.raises(ThresholdsUndefined, match="no active user in nobody"):
        fit_thresholds([0], [0.0], [True], "nobody")


def test_a_cohort_without_an_active_training_user_has_no_levels_but_loads(tmp_path, lake, con):
    by_user, t = _label_rows(tmp_path, lake, con, [Imp(u, _day(1)) for u in (A, B)])  # nobody returns
    assert t is None
    assert all(r["churned"] and r["level"] == 0 for r in by_user.values())


def test_split_is_a_seeded_hash_of_the_user_and_never_moves_when_labels_change(tmp_path, lake, con):
    users = [tid(f"U{i:03d}") for i in range(200)]
    imps = [Imp(u, _day(1)) for u in users]
    returns = [Imp(u, _day(16)) for u in users[::4]]  # 50 active, 150 churned
    split = SplitSettings(0.7, 0.15, seed=3)
    _label_rows(tmp_path, lake, con, imps + returns, split)
    first = {r["user_id"]: r["split"] for r in rows(con, lake.cohort("user_splits", COHORT))}
    # By hand: the first 8 hex digits of md5("<user>:3") over 2^32, cut at 0.70 and 0.85.
    # ICHCGCGCJC 505a8c14 -> 0.3139 train; ICHCGCGCGC c2e3f796 -> 0.7613 validation; ICHCGCGCNC f5e00293 -> 0.9604 test.
    assert (first["ICHCGCGCJC"], first["ICHCGCGCGC"], first["ICHCGCGCNC"]) == ("train", "validation", "test")
    assert first == {u: labels.split_of(u, split) for u in first}
    assert set(first.values()) == {"train", "validation", "test"}
    # Re-ingesting the label days with other content (now every user returns, or nobody does) moves nobody.
    for label_rows in (imps + [Imp(u, _day(17)) for u in users], imps):
        scored, _ = _label_rows(tmp_path / f"again_{len(label_rows)}", lake, con, label_rows, split)
        assert {r["user_id"]: r["split"] for r in rows(con, lake.cohort("user_splits", COHORT))} == first
        assert {u: r["split"] for u, r in scored.items()} == first  # the labels carry the split they were fit on
    # Another seed gives another assignment.
    labels.build_splits(con, lake, [COHORT], SplitSettings(0.7, 0.15, seed=4))
    assert {r["user_id"]: r["split"] for r in rows(con, lake.cohort("user_splits", COHORT))} != first


def test_the_split_is_known_on_the_cohort_day_and_labels_refuse_a_split_older_than_the_membership(
        tmp_path, lake, con):
    """The split reads the membership alone, so it exists before any label day has landed; labels built after
    the membership grew (a re-delivered cohort day) and before the split was rebuilt stop with what to do."""
    cohorts_from_impressions(tmp_path, lake, con, [Imp(A, _day(1)), Imp(B, _day(1))], [COHORT])
    assert labels.build_splits(con, lake, [COHORT], ALL_TRAIN) == {COHORT: 2}
    assert {r["user_id"]: r["split"] for r in rows(con, lake.cohort("user_splits", COHORT))} == {A: "train", B: "train"}
    cohorts_from_impressions(tmp_path / "redelivered", lake, con, [Imp(u, _day(1)) for u in (A, B, C)], [COHORT])
    with pytest.raises(labels.SplitsOutdated, match="user_splits lacks 1 member"):
        labels.build_labels(con, lake, CALENDAR, [COHORT])


def test_split_balance_is_measured_in_standard_errors_of_a_random_draw():
    import pandas as pd

    # A cohort of 200 users, 50 churned (p = 0.25). A split of 100 users holding 40 churned: share 0.40,
    # SE = sqrt(0.25 * 0.75 / 100 * (200 - 100) / 199) = 0.030695, so (0.40 - 0.25) / SE = +4.89: unbalanced.
    frame = pd.DataFrame({"cohort_day": [COHORT] * 200, "split": ["train"] * 100 + ["test"] * 100,
                          "churned": [True] * 40 + [False] * 60 + [True] * 10 + [False] * 90})
    found = {b.split: b for b in labels.split_balance(frame)}
    assert found["train"].churn_share == pytest.approx(0.40) and found["train"].cohort_share == pytest.approx(0.25)
    assert found["train"].standard_errors == pytest.approx(0.15 / (0.25 * 0.75 / 100 * 100 / 199) ** 0.5)
    assert found["train"].standard_errors == pytest.approx(4.887, abs=1e-3)
    assert not found["train"].balanced and not found["test"].balanced  # -4.89 SE on the other side
    even = frame.assign(churned=[True] * 25 + [False] * 75 + [True] * 25 + [False] * 75)
    assert all(b.balanced and b.standard_errors == 0 for b in labels.split_balance(even))
