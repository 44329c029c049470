"""When a trained model has earned a place in the registry: the evidence rule every task family applies.

A validation metric measured on a handful of positives, or one that is undefined, says nothing about a model,
and one at chance says it learned nothing; registering such a model as a candidate (and then promoting it, if
it happens to be the first) hands a retention team a ``@champion`` that does not work. So a model becomes a
registry candidate only when

- its validation rows hold enough evidence: at least ``min_positives`` users of a class and ``min_negatives``
  of the others. A binary task needs both of its classes judged this way; a multi-class task judges the
  classes that have enough users (at least two) and computes its decision metric over exactly those, naming
  the ones left out (the engagement level's rare *Champion* class on a small set, say);
- its decision metric on those rows is finite;
- and it beats chance by ``chance_margin``: 0.5 for an AUC, and for a macro F1 the mean share of the judged
  classes (guessing each class with its share scores its share as F1).

Only validation rows are read here: the test split is reported, never consulted. The champion comparison
(:mod:`churn_dagster.training.ml.champions`) uses the same decision metric on the same rows. The policy itself is
imported when the code location loads (it is the MLflow resource's), so scikit-learn is imported only when
a model is judged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

AUC, MACRO_F1 = "auc", "macro_f1"
METRIC_LABELS = {AUC: "AUC", MACRO_F1: "macro F1"}


@dataclass(frozen=True)
class EvidencePolicy:
    """The registry's evidence rule (``CHURN_MIN_VALIDATION_POSITIVES``, ``CHURN_MIN_VALIDATION_NEGATIVES``,
    ``CHURN_PROMOTION_MARGIN``)."""

    min_positives: int = 30
    min_negatives: int = 30
    chance_margin: float = 0.02

    def judged_classes(self, y: np.ndarray, n_classes: int) -> tuple[int, ...]:
        """The classes with at least ``min_positives`` users and ``min_negatives`` others among ``y``."""
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=n_classes)
        return tuple(c for c in range(n_classes)
                     if counts[c] >= self.min_positives and len(y) - counts[c] >= self.min_negatives)


@dataclass(frozen=True)
class Assessment:
    """What the evidence rule made of one model's validation rows."""

    registrable: bool
    score: float  # the decision metric on the judged classes (NaN when there is not enough evidence)
    chance: float
    judged: tuple[int, ...]
    reason: str  # one line: why it is, or is not, a registry candidate


def decision_score(metric: str, y: np.ndarray, proba: np.ndarray, judged: Sequence[int]) -> float:
    """The decision metric of ``proba`` against ``y`` over the ``judged`` classes: the AUC of a binary task
    (``proba`` of class 1, or ``[N, 2]``), the mean one-vs-rest AUC or the mean F1 of a multi-class one.
    NaN when fewer than two classes are judged (a binary task needs both) or a probability is not finite."""
    from sklearn.metrics import f1_score, roc_auc_score  # when a model is judged: the code location stays light

    y = np.asarray(y, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    if len(judged) < 2 or not np.isfinite(proba).all():
        return math.nan
    if proba.ndim == 1 or proba.shape[1] == 2:
        p1 = proba if proba.ndim == 1 else proba[:, 1]
        if metric == AUC:
            return float(roc_auc_score(y == 1, p1))
        return float(np.mean(f1_score(y, (p1 >= 0.5).astype(np.int64), labels=list(judged), average=None,
                                      zero_division=0)))
    if metric == AUC:
        return float(np.mean([roc_auc_score(y == c, proba[:, c]) for c in judged]))
    return float(np.mean(f1_score(y, proba.argmax(axis=1), labels=list(judged), average=None, zero_division=0)))


def chance_score(metric: str, y: np.ndarray, judged: Sequence[int]) -> float:
    """What a model without information scores: 0.5 AUC, or for a macro F1 the mean share of the judged classes
    (a guesser drawing each class with its share has precision and recall, so F1, equal to that share)."""
    if metric == AUC:
        return 0.5
    y = np.asarray(y, dtype=np.int64)
    return float(np.mean([(y == c).mean() for c in judged])) if len(judged) and len(y) else math.nan


def _shortage(policy: EvidencePolicy, y: np.ndarray, names: Sequence[str], judged: tuple[int, ...]) -> str:
    counts = np.bincount(y, minlength=len(names))
    if len(names) == 2:
        positives, negatives = int(counts[1]), int(counts[0])
        if positives < policy.min_positives:
            return f"{positives} validation positives ({names[1]}), need {policy.min_positives}"
        return f"{negatives} validation negatives ({names[0]}), need {policy.min_negatives}"
    short = ", ".join(f"{names[c]} {int(counts[c])}" for c in range(len(names)) if c not in judged)
    return (f"only {len(judged)} of {len(names)} classes have {policy.min_positives} validation users and "
            f"{policy.min_negatives} others ({short}), need 2")


def assess(policy: EvidencePolicy, metric: str, y: np.ndarray, proba: np.ndarray, names: Sequence[str]) -> Assessment:
    """Apply the evidence rule to a model's validation predictions ``proba`` of labels ``y`` (classes named
    ``names``, class 1 the positive one of a binary task)."""
    y = np.asarray(y, dtype=np.int64)
    judged = policy.judged_classes(y, len(names))
    label = METRIC_LABELS[metric]
    if len(judged) < 2:
        return Assessment(False, math.nan, math.nan, judged, f"not registered: {_shortage(policy, y, names, judged)}")
    score, chance = decision_score(metric, y, proba, judged), chance_score(metric, y, judged)
    if not np.isfinite(score):
        return Assessment(False, score, chance, judged, f"not registered: validation {label} is undefined")
    left_out = [names[c] for c in range(len(names)) if c not in judged]
    scope = f" on {', '.join(names[c] for c in judged)} (too few: {', '.join(left_out)})" if left_out else ""
    if score <= chance + policy.chance_margin:
        return Assessment(False, score, chance, judged,
                          f"not registered: validation {label} {score:.4f}{scope} does not beat chance "
                          f"{chance:.4f} by {policy.chance_margin}")
    return Assessment(True, score, chance, judged,
                      f"validation {label} {score:.4f}{scope} on {len(y)} users beats chance {chance:.4f} "
                      f"by more than {policy.chance_margin}")
