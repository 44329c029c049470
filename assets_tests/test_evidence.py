"""The registry's evidence rule (training/ml/evidence.py) by hand, the protocols' cohorts, and the promise that the test
split takes part in no decision: a model, its validation metrics and the rule's verdict do not move when every
test label is flipped."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from churn_dagster.domain.calendar import Calendar
from churn_dagster.domain.engagement import LEVEL_NAMES
from churn_dagster.studies.churn.ml.experiments import Protocol, adjacent_protocol, classical_experiment, protocols
from churn_dagster.training.ml import classical
from churn_dagster.training.ml.evidence import AUC, MACRO_F1, EvidencePolicy, assess, chance_score, decision_score

POLICY = EvidencePolicy()
BINARY = ("active", "churned")


def test_a_binary_model_needs_30_of_each_class_a_finite_auc_and_a_margin_over_chance():
    y = np.array([1] * 30 + [0] * 30)
    perfect = assess(POLICY, AUC, y, np.r_[np.ones(30), np.zeros(30)], BINARY)
    assert perfect.registrable and perfect.score == 1.0 and perfect.chance == 0.5
    assert perfect.reason == "validation AUC 1.0000 on 60 users beats chance 0.5000 by more than 0.02"
    few = assess(POLICY, AUC, y[1:], np.r_[np.ones(29), np.zeros(30)], BINARY)
    assert not few.registrable and few.reason == "not registered: 29 validation positives (churned), need 30"
    assert assess(POLICY, AUC, y[:-1], np.r_[np.ones(30), np.zeros(29)], BINARY).reason == (
        "not registered: 29 validation negatives (active), need 30")
    # Every probability equal: AUC exactly 0.5, not above chance.
    flat = assess(POLICY, AUC, y, np.full(60, 0.3), BINARY)
    assert not flat.registrable and flat.reason == (
        "not registered: validation AUC 0.5000 does not beat chance 0.5000 by 0.02")
    # Positives on ranks 31..60, negatives on 1..30, then two positives swapped with the two lowest negatives:
    # the positives on ranks 1 and 2 lose to all 30 negatives, the rest win: AUC = (900 - 60) / 900 = 0.9333.
    scores = np.r_[np.arange(31, 61), np.arange(1, 31)].astype(float)
    scores[[0, 1, 30, 31]] = scores[[30, 31, 0, 1]]
    assert decision_score(AUC, y, scores / 60, (0, 1)) == pytest.approx(840 / 900)
    broken = assess(POLICY, AUC, y, np.r_[np.full(30, np.nan), np.zeros(30)], BINARY)
    assert not broken.registrable and broken.reason == "not registered: validation AUC is undefined"


def test_the_margin_is_a_setting():
    y = np.array([1] * 30 + [0] * 30)
    p = np.r_[np.arange(30), np.arange(30)] / 60  # interleaved: every positive ties a negative, AUC 0.5
    p[0] = 0.99  # one positive above every negative: AUC = (0.5 * 900 + 30 - 0.5) / 900 = 0.53278
    assert decision_score(AUC, y, p, (0, 1)) == pytest.approx(479.5 / 900)
    assert assess(EvidencePolicy(30, 30, 0.02), AUC, y, p, BINARY).registrable
    assert not assess(EvidencePolicy(30, 30, 0.05), AUC, y, p, BINARY).registrable


def test_a_level_model_is_judged_on_the_levels_with_enough_users_and_names_the_others():
    counts = [100, 40, 30, 29, 5]  # Engaged and Champion fall short of 30
    y = np.repeat(np.arange(5), counts)
    proba = np.eye(5)[y]
    verdict = assess(POLICY, AUC, y, proba, LEVEL_NAMES)
    assert verdict.registrable and verdict.judged == (0, 1, 2) and verdict.score == 1.0
    assert verdict.reason == ("validation AUC 1.0000 on Churned, At-Risk, Regular (too few: Engaged, Champion) on "
                              "204 users beats chance 0.5000 by more than 0.02")
    # The Champion column alone is wrong, and it is not judged: the decision metric does not move.
    flipped = proba.copy()
    flipped[:, 4] = 1 - flipped[:, 4]
    assert decision_score(AUC, y, flipped, verdict.judged) == 1.0
    one = assess(POLICY, AUC, np.repeat(np.arange(5), [200, 20, 10, 5, 1]), np.full((236, 5), 0.2), LEVEL_NAMES)
    assert not one.registrable and one.reason == (
        "not registered: only 1 of 5 classes have 30 validation users and 30 others (At-Risk 20, Regular 10, "
        "Engaged 5, Champion 1), need 2")


def test_macro_f1_beats_the_mean_share_of_the_judged_classes():
    y = np.repeat([0, 1, 2], [60, 30, 30])
    assert chance_score(MACRO_F1, y, (0, 1, 2)) == pytest.approx((0.5 + 0.25 + 0.25) / 3)
    always_first = np.tile([1.0, 0.0, 0.0], (120, 1))  # F1: 2 * 0.5 * 1 / 1.5 = 2/3 for class 0, 0 for the others
    assert decision_score(MACRO_F1, y, always_first, (0, 1, 2)) == pytest.approx((2 / 3) / 3)
    verdict = assess(POLICY, MACRO_F1, y, always_first, ("decrease", "same", "increase"))
    assert not verdict.registrable and "does not beat chance 0.3333" in verdict.reason


def test_protocols_train_out_of_time_on_what_was_known_when_the_test_cohort_was_scored():
    calendar = Calendar()  # 1-30 Nov, 14 + 7 days
    # Cohort 11-10 is scored on 11-23; labels closed by then: cohorts up to 11-03 (11-03 + 20 days = 11-23).
    assert calendar.observation_closed(date(2019, 11, 10)) == date(2019, 11, 23)
    assert calendar.cohorts_labelled_by(date(2019, 11, 23), 7) == [date(2019, 11, d) for d in (1, 2, 3)]
    assert calendar.cohorts_labelled_by(date(2019, 11, 30), 3) == [date(2019, 11, d) for d in (8, 9, 10)]
    assert calendar.cohorts_labelled_by(date(2019, 11, 20), 7) == []  # nothing labelled yet
    assert calendar.labels_closed(date(2019, 11, 10)) == date(2019, 11, 30)
    window = [date(2019, 11, d) for d in range(4, 11)]
    earlier = calendar.cohorts_labelled_by(calendar.observation_closed(window[-1]), 7)
    random, out_of_time = protocols(window, earlier)
    assert random == Protocol("random", tuple(window), tuple(window)) and random.test_split == "test"
    assert out_of_time.train_cohorts == tuple(earlier) and out_of_time.test_cohorts == (date(2019, 11, 10),)
    assert out_of_time.test_split is None  # every user of the test cohort
    assert [p.scheme for p in protocols(window, [])] == ["random"]  # nothing had closed yet: no out-of-time run
    assert adjacent_protocol(window).train_cohorts == tuple(window[:-1])


def _cohort_frames(days: list[date], n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """KPI features and labels of ``n`` users per cohort day whose churn follows one feature."""
    rng = np.random.default_rng(seed)
    kpi, labels = [], []
    for day in days:
        signal = rng.normal(size=n)
        churned = signal + 0.8 * rng.normal(size=n) > 0.3
        users = [f"{day:%d}u{i:03d}" for i in range(n)]
        kpi.append(pd.DataFrame({"user_id": users, "cohort_day": pd.Timestamp(day), "signal": signal,
                                 "noise": rng.normal(size=n)}))
        labels.append(pd.DataFrame({
            "user_id": users, "split": np.array(["train"] * 7 + ["validation"] * 2 + ["test"] * 1)[np.arange(n) % 10],
            "churned": churned, "frequency": np.where(churned, 0.0, 0.5), "impressions": np.where(churned, 0, 10),
            "quality_raw": np.where(churned, 0.0, 0.1), "level": np.where(churned, 0, 1), "score": 0.0}))
    return pd.concat(kpi, ignore_index=True), pd.concat(labels, ignore_index=True)


@pytest.mark.parametrize("family", ["logreg", "xgboost"])
def test_flipping_every_test_label_changes_no_model_and_no_decision(family):
    days = [date(2019, 11, d) for d in range(1, 5)]
    kpi, labels = _cohort_frames(days)
    flipped = labels.assign(churned=np.where(labels["split"] == "test", ~labels["churned"], labels["churned"]))
    for protocol in protocols(days, days[:2]):
        config = classical.XGBConfig(n_estimators=40, n_jobs=1) if family == "xgboost" else None
        a = classical_experiment(family, "binary", kpi, labels, protocol, config)
        b = classical_experiment(family, "binary", kpi, flipped, protocol, config)
        assert a.val_metrics == b.val_metrics and a.test_metrics != b.test_metrics, protocol.scheme
        pa = a.validation.proba(family, a.model)
        assert np.array_equal(pa, b.validation.proba(family, b.model))
        assert assess(POLICY, AUC, a.validation.y, pa, BINARY) == assess(POLICY, AUC, b.validation.y, pa, BINARY)
