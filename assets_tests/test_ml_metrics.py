"""Metrics against examples worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from churn_dagster.training.ml.metrics import binary_metrics, flatten_metrics, multiclass_metrics


def test_binary_confusion_matrix_and_rates_by_hand():
    # y: 0 0 0 1 1 1 1 ; p >= 0.5 predicts 1 -> predictions 0 1 0 1 1 0 1
    y = [0, 0, 0, 1, 1, 1, 1]
    p = [0.1, 0.6, 0.4, 0.9, 0.5, 0.2, 0.7]
    m = binary_metrics(y, p)
    assert m["confusion_matrix"] == [[2, 1], [1, 3]]  # [[TN, FP], [FN, TP]]
    assert m["accuracy"] == pytest.approx(5 / 7)
    churned, active = m["per_class"]["churned"], m["per_class"]["active"]
    assert churned["precision"] == pytest.approx(3 / 4) and churned["recall"] == pytest.approx(3 / 4)
    assert active["precision"] == pytest.approx(2 / 3) and active["recall"] == pytest.approx(2 / 3)
    assert active["support"] == 3 and churned["support"] == 4
    assert m["f1_macro"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    # AUC = share of (positive, negative) pairs ranked correctly: negatives 0.1, 0.4, 0.6.
    # Positives 0.9 and 0.7 beat all 3; 0.5 beats 2; 0.2 beats 1 -> (3 + 3 + 2 + 1) / 12.
    assert m["roc_auc"] == pytest.approx(9 / 12)
    assert m["positive_rate"] == pytest.approx(4 / 7)


def test_known_auc_with_ties_and_perfect_ranking():
    assert binary_metrics([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5])["roc_auc"] == pytest.approx(0.5)
    assert binary_metrics([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])["roc_auc"] == 1.0
    assert binary_metrics([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1])["roc_auc"] == 0.0


def test_binary_with_one_class_reports_nan_auc_and_json_serialises():
    m = binary_metrics([1, 1, 1], [0.9, 0.2, 0.7])
    assert math.isnan(m["roc_auc"])
    assert math.isnan(m["per_class"]["active"]["recall"]) and m["per_class"]["active"]["precision"] == 0.0
    assert m["recall_macro"] == pytest.approx(2 / 3)  # macro over the classes present: churned only
    assert json.loads(json.dumps(m))["confusion_matrix"] == [[0, 0], [1, 2]]


def test_multiclass_by_hand():
    y = [0, 0, 1, 1, 2, 2]
    proba = np.array([
        [0.8, 0.1, 0.1], [0.4, 0.5, 0.1],  # true 0: right, wrong (-> 1)
        [0.2, 0.7, 0.1], [0.1, 0.6, 0.3],  # true 1: right, right
        [0.1, 0.2, 0.7], [0.5, 0.2, 0.3],  # true 2: right, wrong (-> 0)
    ])
    m = multiclass_metrics(y, proba, names=("a", "b", "c"))
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    a, b, c = (m["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"]) == (pytest.approx(1 / 2), pytest.approx(1 / 2))
    assert (b["precision"], b["recall"]) == (pytest.approx(2 / 3), 1.0)
    assert (c["precision"], c["recall"]) == (1.0, pytest.approx(1 / 2))
    assert b["f1"] == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))
    assert m["precision_macro"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    # One-vs-rest AUC of class a: positives score 0.8, 0.4; negatives 0.2, 0.1, 0.1, 0.5 -> 7/8.
    assert a["roc_auc"] == pytest.approx(7 / 8)
    # Class b: positives 0.7, 0.6 beat all of 0.1, 0.5, 0.2, 0.2 -> 1. Class c: negatives 0.1, 0.1, 0.1,
    # 0.3; positive 0.7 beats all 4, positive 0.3 beats 3 and ties 1 (a tie counts half) -> 7.5/8.
    assert b["roc_auc"] == 1.0 and c["roc_auc"] == pytest.approx(7.5 / 8)
    assert m["roc_auc_ovr_macro"] == pytest.approx((7 / 8 + 1 + 7.5 / 8) / 3)


def test_multiclass_with_an_absent_class_does_not_crash():
    y = [0, 0, 1, 1, 3]
    proba = np.full((5, 5), 0.2)
    proba[:, 0] += np.array([0.5, 0.4, 0.0, 0.1, 0.0])
    proba /= proba.sum(axis=1, keepdims=True)
    m = multiclass_metrics(y, proba)
    absent = [m["per_class"][name] for name in ("Regular", "Champion")]
    assert all(math.isnan(c["roc_auc"]) and math.isnan(c["recall"]) and c["support"] == 0 for c in absent)
    present_aucs = [m["per_class"][n]["roc_auc"] for n in ("Churned", "At-Risk", "Engaged")]
    assert m["roc_auc_ovr_macro"] == pytest.approx(np.mean(present_aucs))
    assert m["per_class"]["Churned"]["roc_auc"] == 1.0
    flat = flatten_metrics(m)
    assert flat["per_class.Churned.roc_auc"] == 1.0 and "confusion_matrix" not in flat


def test_shape_and_label_checks():
    with pytest.raises(ValueError):
        binary_metrics([0, 1], [0.5])
    with pytest.raises(ValueError):
        binary_metrics([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError):
        multiclass_metrics([0, 1], np.full((2, 4), 0.25))
