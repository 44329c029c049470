"""The case study's models without Dagster: upsampling touches training rows only and makes the actives 4x, every
family trains in both variants and reports every metric, the metrics by hand, and the case study's own figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_dagster.studies.case_study.ml import models as cs
from churn_dagster.studies.case_study.ml import report
from churn_dagster.studies.case_study.ml.hyperparameters import (
    MlpConfig,
    NaiveBayesConfig,
    SvmConfig,
    TreeConfig,
    UpsamplingConfig,
)
from churn_dagster.studies.case_study.sql.data import ACTIVITY_FEATURES
from churn_dagster.training.ml.champions import EvaluationRows

SETTINGS = {"svm": SvmConfig(), "naive_bayes": NaiveBayesConfig(), "decision_tree": TreeConfig(max_depth=4),
            "mlp": MlpConfig(max_epochs=100, batch_size=64)}


def _tables(n: int = 1200, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Users whose chance of being active rises with their early clicks and likes (about 1 in 5 active)."""
    rng = np.random.default_rng(seed)
    engagement = rng.gamma(0.6, 1.0, n)
    features = pd.DataFrame({"user_id": [f"u{i:05d}" for i in range(n)], "first_dt": 1, "last_feature_dt": 5})
    for column in ACTIVITY_FEATURES:
        features[column] = rng.poisson(engagement * (30 if column == "view_time_s" else 2)).astype(float)
    features["province"] = rng.choice(["guang dong", "bei jing", "xin jiang", None], n)
    features["age"] = np.where(rng.random(n) < 0.35, np.nan, rng.integers(12, 50, n))
    features["gender"] = rng.choice(["male", "female", "unknown", None], n)
    features["registered_months"] = rng.integers(0, 80, n).astype(float)
    active = rng.random(n) < 1 / (1 + np.exp(-(2.5 * engagement - 3.5)))
    split = rng.choice(["train", "validation", "test"], n, p=[0.6, 0.2, 0.2])
    labels = pd.DataFrame({"user_id": features["user_id"], "split": split, "active": active})
    return features, labels


@pytest.fixture(scope="module")
def design() -> cs.Design:
    return cs.design(*_tables())


def test_upsampling_makes_the_actives_four_times_and_keeps_every_original_row():
    X = pd.DataFrame({"user": [f"u{i}" for i in range(10)]})
    y = np.array([1, 0, 0, 1, 0, 0, 1, 0, 0, 0])
    X_up, y_up = cs.upsample_actives(X, y, factor=4, seed=3)
    assert (y_up == 1).sum() == 4 * 3 and (y_up == 0).sum() == 7
    assert X_up.iloc[:10].equals(X) and set(X_up["user"][y_up == 1]) == {"u0", "u3", "u6"}
    assert (X_up["user"][y_up == 0].to_numpy() == X["user"][y == 0].to_numpy()).all()
    again = cs.upsample_actives(X, y, factor=4, seed=3)
    assert again[0].equals(X_up) and cs.upsample_actives(X, y, factor=1, seed=3)[0].equals(X)


def test_upsampling_never_touches_validation_or_test_rows(design):
    plain = cs.run_variant("decision_tree", SETTINGS["decision_tree"], UpsamplingConfig(), design, "plain")
    up = cs.run_variant("decision_tree", SETTINGS["decision_tree"], UpsamplingConfig(), design, "upsampled")
    train = design.y[design.rows("train")]
    assert plain.train_rows == len(train) and plain.train_actives == train.sum() == up.original_train_actives
    assert up.train_actives == 4 * train.sum() and up.train_rows == len(train) + 3 * train.sum()
    for split, metrics in (("validation", "val_metrics"), ("test", "test_metrics")):
        rows = design.rows(split)
        for result in (plain, up):
            scored = getattr(result, metrics)
            assert scored["n"] == rows.sum() and scored["active_share"] == pytest.approx(design.y[rows].mean())
    test_users = design.user_id[design.rows("test")]
    assert (plain.predictions["user_id"].to_numpy() == test_users).all()
    assert (up.predictions["user_id"].to_numpy() == test_users).all()
    assert (up.predictions["y"].to_numpy() == plain.predictions["y"].to_numpy()).all()


@pytest.mark.parametrize("family", cs.FAMILIES)
def test_every_model_trains_in_both_variants_and_reports_every_metric(family, design):
    for variant in cs.VARIANTS:
        result = cs.run_variant(family, SETTINGS[family], UpsamplingConfig(), design, variant)
        for metrics in (result.val_metrics, result.test_metrics):
            for name in ("accuracy", "precision_active", "recall_active", "f1_active", "roc_auc"):
                assert 0 <= metrics[name] <= 1, (family, variant, name)
            assert metrics["roc_auc"] > 0.65, (family, variant)  # the planted signal is learnt
        # the champion rule scores the same Pipeline on the validation users through the shared code path
        rows = EvaluationRows(target="binary", y=design.y[design.rows("validation")], kpi=design.X[design.rows("validation")])
        assert rows.auc(family, result.model) == pytest.approx(result.val_metrics["roc_auc"])
    # upsampling predicts more actives at the same 0.5 cut
    plain, up = (cs.run_variant(family, SETTINGS[family], UpsamplingConfig(), design, v) for v in cs.VARIANTS)
    assert up.test_metrics["predicted_active_share"] >= plain.test_metrics["predicted_active_share"]


def test_metrics_by_hand():
    m = cs.active_metrics(np.array([1, 0, 1, 0]), np.array([0.9, 0.6, 0.4, 0.1]))
    assert (m["accuracy"], m["precision_active"], m["recall_active"], m["f1_active"]) == (0.5, 0.5, 0.5, 0.5)
    assert m["roc_auc"] == 0.75 and m["confusion_matrix"] == [[1, 1], [1, 1]]
    at_cut = cs.active_metrics(np.array([1, 0]), np.array([0.5, 0.49]))  # 0.5 is predicted active
    assert at_cut["recall_active"] == 1.0 and at_cut["precision_active"] == 1.0
    nobody = cs.active_metrics(np.array([0, 0]), np.array([0.1, 0.2]))
    assert nobody["precision_active"] == 0.0 and np.isnan(nobody["recall_active"]) and np.isnan(nobody["roc_auc"])


def test_a_design_needs_both_tables_to_hold_the_same_users():
    features, labels = _tables(50)
    with pytest.raises(ValueError, match="share only 49 users"):
        cs.design(features, labels.iloc[1:])
    one_class = cs.design(features, labels.assign(active=False))
    assert "hold 0 active and" in cs.trainable(one_class) and "each class needs at least 1" in cs.trainable(one_class)
    two_actives = cs.design(features, labels.assign(active=labels["user_id"].isin(["u00000", "u00001"])
                                                    & (labels["split"] == "train")))
    assert cs.trainable(two_actives) is None and "needs at least 3" in cs.trainable(two_actives, min_per_class=3)


def test_the_case_studys_figures_are_theirs_as_printed():
    theirs = pd.DataFrame(report.their_rows()).set_index("model")
    # the notebook's classification reports, rounded to two decimals (accuracy to four)
    printed = {"Logistic regression": (0.7202, 0.77, 0.74, 0.76), "SVM (RBF kernel, C=100)": (0.7228, 0.78, 0.73, 0.76),
               "Random forest (1000 trees, depth 10)": (0.7507, 0.75, 0.87, 0.80),
               "Neural network (28-10-6 ReLU)": (0.7322, 0.74, 0.84, 0.79)}
    for model, (accuracy, precision, recall, f1) in printed.items():
        row = theirs.loc[model]
        assert round(row["accuracy"], 4) == accuracy and row["test users"] == 23769
        assert (round(row["precision (active)"], 2), round(row["recall (active)"], 2), round(row["F1 (active)"], 2)) == (
            precision, recall, f1)
    assert set(theirs["whose"]) == {report.THEIRS} and theirs["ROC-AUC"].isna().all()
