"""Evaluation metrics as plain dicts (floats, ints, lists) that JSON and MLflow accept as they are.

Undefined values are NaN rather than an exception or a silent 0, so a small or out-of-time test set that
lacks a class still yields a report, and the gap is visible:

- AUC of a class that is absent from ``y_true`` (or is the only class present) is NaN.
- Recall and F1 of a class absent from ``y_true`` are NaN; its precision is 0 if it was predicted.
- Precision of a class that was never predicted is 0 (scikit-learn's ``zero_division=0`` convention, as
  in the reference study's classification reports).
- Macro averages are unweighted means over the classes that occur in ``y_true``; with every class present
  they equal scikit-learn's ``average="macro"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score

from churn_dagster.domain.engagement import LEVEL_NAMES

BINARY_NAMES = ("active", "churned")


def _auc(is_positive: np.ndarray, score: np.ndarray) -> float:
    if is_positive.all() or not is_positive.any():
        return math.nan
    return float(roc_auc_score(is_positive, score))


def _per_class(cm: np.ndarray, names: Sequence[str]) -> tuple[dict, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix (rows true, columns predicted)."""
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    report = {}
    for k, name in enumerate(names):
        precision = tp[k] / predicted[k] if predicted[k] else 0.0
        recall = tp[k] / support[k] if support[k] else math.nan
        if not support[k]:
            f1 = math.nan
        else:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report[name] = {
            "precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(support[k])
        }
    return report, support > 0


def _summary(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str]) -> dict:
    cm = confusion_matrix(y_true, y_pred, labels=list(range(len(names))))
    per_class, present = _per_class(cm, names)
    macro = {
        f"{m}_macro": float(np.mean([per_class[n][m] for n, p in zip(names, present, strict=True) if p]))
        for m in ("precision", "recall", "f1")
    }
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_true == y_pred).mean()),
        **macro,
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "class_names": list(names),
    }


def binary_metrics(y_true: Sequence[int], p: Sequence[float], threshold: float = 0.5,
                   names: Sequence[str] = BINARY_NAMES) -> dict:
    """Metrics of churn probabilities ``p`` (class 1 = churned) against ``y_true``; a user is predicted
    churned when ``p >= threshold``. The confusion matrix is ``[[TN, FP], [FN, TP]]``. ``names`` are the
    classes 0 and 1 as the per-class entries call them (another binary task names its own)."""
    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if len(y) != len(p) or len(y) == 0:
        raise ValueError(f"need equal, non-zero lengths, got {len(y)} labels and {len(p)} probabilities")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("binary labels must be 0 or 1")
    out = _summary(y, (p >= threshold).astype(np.int64), names)
    return {"roc_auc": _auc(y == 1, p), "threshold": threshold, "positive_rate": float(y.mean()), **out}


def multiclass_metrics(y_true: Sequence[int], proba: np.ndarray, names: Sequence[str] = LEVEL_NAMES) -> dict:
    """Metrics of class probabilities ``proba [N, K]`` against integer labels 0..K-1; the predicted class
    is the most probable one. Per-class AUC is one-vs-rest; ``roc_auc_ovr_macro`` is their mean over the
    classes present in ``y_true``."""
    y = np.asarray(y_true).astype(np.int64).ravel()
    proba = np.asarray(proba, dtype=np.float64)
    k = len(names)
    if proba.ndim != 2 or proba.shape != (len(y), k) or len(y) == 0:
        raise ValueError(f"proba must be [{len(y)}, {k}] with N > 0, got {list(proba.shape)}")
    if y.min() < 0 or y.max() >= k:
        raise ValueError(f"labels must lie in 0..{k - 1}")
    out = _summary(y, proba.argmax(axis=1), names)
    aucs = [_auc(y == c, proba[:, c]) for c in range(k)]
    for name, auc in zip(names, aucs, strict=True):
        out["per_class"][name]["roc_auc"] = auc
    defined = [a for a in aucs if not math.isnan(a)]
    return {"roc_auc_ovr_macro": float(np.mean(defined)) if defined else math.nan, **out}


def flatten_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """The scalar entries of a metrics dict as ``{"per_class.churned.f1": 0.8, ...}`` for MLflow
    ``log_metrics``; lists (the confusion matrix, class names) are left out."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def metrics_for(target: str, y: np.ndarray, proba: np.ndarray) -> dict:
    """Every metric of SPEC "Evaluation" for churn (``"binary"``) or the five levels (``"level"``)."""
    return binary_metrics(y, proba) if target == "binary" else multiclass_metrics(y, proba)


def headline_auc(target: str, metrics: dict) -> float:
    """The number models are compared and promoted on: ROC-AUC, or macro one-vs-rest AUC for the levels."""
    return float(metrics["roc_auc"] if target == "binary" else metrics["roc_auc_ovr_macro"])
