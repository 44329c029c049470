"""Comparing models fairly: on the same users, with the same labels.

A challenger's validation AUC and a champion's stored validation AUC come from different users (and, for
the levels, from labels made with different thresholds), so comparing the two numbers says little. Here
every candidate is scored on one fixed set of :class:`EvaluationRows` (the challenger's validation users,
labelled by the challenger's protocol) and the AUCs compared are computed on exactly those rows, over the
classes the evidence rule judges there (:mod:`churn_dagster.training.ml.evidence`: a level with too few users is left
out of the mean for both). A model that cannot read those rows at all (trained on other features, say)
cannot be compared and is said so. Only challengers that passed the evidence rule reach :func:`judge`.

Plain Python over fitted models: the MLflow side (which version holds the alias) is in ``defs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churn_dagster.domain.engagement import N_LEVELS
from churn_dagster.stages.tensors.ml.data import (
    CohortTensors,
    Normalization,
    SequenceDataset,
    make_loader,
)
from churn_dagster.training.ml import classical
from churn_dagster.training.ml.evidence import AUC, EvidencePolicy, decision_score
from churn_dagster.training.ml.train import predict_proba

SEQUENCE_FAMILIES = ("lstm", "hybrid_lstm")


class IncompatibleModel(ValueError):
    """The model cannot score these rows (other features than it was trained on)."""


@dataclass
class EvaluationRows:
    """Users and their labels in the forms the families read: KPI features for the classical models and
    tensor cohorts (their ``split`` users, in cohort order) for the networks. ``kpi`` rows and the
    tensors' users are the same users in the same order, so every family is scored on the same rows."""

    target: str
    y: np.ndarray
    kpi: pd.DataFrame | None = None
    cohorts: list[CohortTensors] | None = None
    split: str | None = "validation"  # None: every user of the cohorts (scoring)
    policy: EvidencePolicy = field(default_factory=EvidencePolicy)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def judged(self) -> tuple[int, ...]:
        """The classes with enough users here to enter the decision metric."""
        return self.policy.judged_classes(self.y, 2 if self.target == "binary" else N_LEVELS)

    def proba(self, family: str, model, normalization: Normalization | None = None) -> np.ndarray:
        if family in SEQUENCE_FAMILIES:
            if self.cohorts is None or normalization is None:
                raise IncompatibleModel("no tensors for these rows, or the network has no normalisation")
            if normalization.static_features != self.cohorts[0].static_features:
                raise IncompatibleModel(f"the network reads static features {normalization.static_features}, "
                                        f"the rows have {self.cohorts[0].static_features}")
            data = SequenceDataset(self.cohorts, self.target, split=self.split, normalization=normalization,
                                   labelled=False)
            return predict_proba(model, make_loader(data, 512), "cpu")
        if self.kpi is None:
            raise IncompatibleModel("no KPI features for these rows")
        expected = list(getattr(model, "feature_names_in_", []))
        if sorted(expected) != sorted(self.kpi.columns):
            missing, extra = set(expected) - set(self.kpi.columns), set(self.kpi.columns) - set(expected)
            raise IncompatibleModel(f"the model reads other KPI features (missing {sorted(missing)}, "
                                    f"new {sorted(extra)})")
        return classical.predict_proba(model, self.kpi[expected], self.target)

    def auc(self, family: str, model, normalization: Normalization | None = None) -> float:
        """The decision AUC (binary, or the mean one-vs-rest AUC of the judged levels) of a model on these rows."""
        return decision_score(AUC, self.y, self.proba(family, model, normalization), self.judged)


@dataclass(frozen=True)
class Candidate:
    """A fitted model that can be scored: the challenger, a registered champion, or a family's champion."""

    name: str
    family: str
    model: object
    normalization: Normalization | None = None


@dataclass(frozen=True)
class Verdict:
    promote: bool
    challenger_auc: float
    champion_auc: float | None
    reason: str


def judge(challenger: Candidate, champion: Candidate | None, rows: EvaluationRows) -> Verdict:
    """Promote the challenger (which passed the evidence rule on ``rows``) only if it beats the champion on
    ``rows`` (strictly), or if there is no champion, or if the champion cannot read or score these rows."""
    mine = rows.auc(challenger.family, challenger.model, challenger.normalization)
    if champion is None:
        return Verdict(True, mine, None, f"{challenger.name} is the first champion (AUC {mine:.4f} on {len(rows)} users)")
    try:
        theirs = rows.auc(champion.family, champion.model, champion.normalization)
    except IncompatibleModel as exc:
        return Verdict(True, mine, None, f"the champion {champion.name} cannot be scored on these rows ({exc}); "
                                         f"{challenger.name} replaces it")
    if not np.isfinite(theirs):
        return Verdict(True, mine, None, f"the champion {champion.name} gives no finite AUC on these rows; "
                                         f"{challenger.name} replaces it")
    verdict = "beats" if mine > theirs else "does not beat"
    return Verdict(mine > theirs, mine, theirs,
                   f"{challenger.name} (AUC {mine:.4f}) {verdict} the champion {champion.name} (AUC {theirs:.4f}) "
                   f"on the same {len(rows)} validation users")


def best(candidates: list[Candidate], rows: EvaluationRows) -> tuple[Candidate, dict[str, float]]:
    """The candidate with the highest AUC on ``rows`` (ties: the first given), with every AUC; candidates
    that cannot read the rows, or score them with no finite AUC, are left out."""
    scores: dict[str, float] = {}
    for candidate in candidates:
        try:
            score = rows.auc(candidate.family, candidate.model, candidate.normalization)
        except IncompatibleModel:
            continue
        if np.isfinite(score):
            scores[candidate.name] = score
    if not scores:
        raise IncompatibleModel("no candidate can score these rows")
    winner = max(candidates, key=lambda c: scores.get(c.name, -np.inf))
    return winner, scores
