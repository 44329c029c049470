"""The two evaluation protocols every model goes through, for the sequence and the classical models.

- ``random``: users of all training cohorts, split by the stratified, seeded split of the label assets:
  fit on ``train``, select on ``validation``, report on ``test``. This model is the one registered.
- ``out_of_time``: fit on the train split of the *earlier* cohorts (validation split of the same cohorts for
  early stopping), report on every user of the *latest* cohort, which is what a daily retrain faces.

Everything fitted is fitted on the training rows of each protocol and stored with its result: the
normalisation of the networks' inputs (imputation medians, means and standard deviations) and, for the
level target, the P95 thresholds that turn label-period components into levels. So under the out-of-time
protocol the test cohort's levels come from thresholds of the earlier cohorts' training users, and nothing
of a test cohort shapes its own inputs or labels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from churn_dagster.domain.engagement import N_LEVELS, Thresholds, fit_thresholds
from churn_dagster.ml import classical
from churn_dagster.ml.champions import EvaluationRows
from churn_dagster.ml.data import (
    CohortTensors,
    Normalization,
    SequenceDataset,
    fit_normalization,
    make_loader,
)
from churn_dagster.ml.metrics import metrics_for
from churn_dagster.ml.train import (
    EpochCallback,
    TrainConfig,
    predict_proba,
    train_model,
)

SCHEMES = ("random", "out_of_time")


@dataclass
class SchemeResult:
    """One protocol's fitted model, its validation and test metrics, and its test predictions."""

    scheme: str
    model: object
    val_metrics: dict
    test_metrics: dict
    predictions: pd.DataFrame
    train_users: int
    test_users: int
    seconds: float
    history: list[dict]
    best_epoch: int | None = None
    normalization: Normalization | None = None
    thresholds: Thresholds | None = None
    validation: EvaluationRows | None = None  # the rows a champion is compared on, with this protocol's labels


def prediction_frame(users: pd.DataFrame, target: str, y: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    """Test predictions joined back to users: ``p`` for churn, ``p_0..p_4`` for the levels."""
    frame = users[["user_id", "cohort_day"]].reset_index(drop=True).assign(y=y)
    if target == "binary":
        return frame.assign(p=proba)
    return frame.assign(**{f"p_{k}": proba[:, k] for k in range(proba.shape[1])})


def protocol_thresholds(target: str, train_users: pd.DataFrame, what: str) -> Thresholds | None:
    """The level thresholds of a protocol, fit on its training users (``train_users``: label components
    of exactly those users); None for the churn target, which needs none."""
    if target == "binary":
        return None
    return fit_thresholds(train_users["impressions"], train_users["quality_raw"], train_users["churned"], what)


def split_cohorts(cohorts: Sequence, scheme: str) -> tuple[list, list]:
    """(training cohorts, test cohorts) of a protocol, cohorts given oldest first."""
    if scheme == "random":
        return list(cohorts), list(cohorts)
    if len(cohorts) < 2:
        raise ValueError("the out-of-time protocol needs at least two cohorts")
    return list(cohorts[:-1]), [cohorts[-1]]


def sequence_experiment(
    kind: str,
    target: str,
    cohort_dirs: Sequence[Path],
    scheme: str,
    config: TrainConfig,
    device=None,
    on_epoch: EpochCallback | None = None,
    **model_kwargs,
) -> SchemeResult:
    """Train ``kind`` ("lstm" or "hybrid") under one protocol on tensor folders given oldest first (each
    folder resolved once, so a rebuild during training cannot mix versions)."""
    cohorts = [CohortTensors(d) for d in cohort_dirs]
    train_cohorts, test_cohorts = split_cohorts(cohorts, scheme)
    norm = fit_normalization(train_cohorts)
    train_users = pd.concat([c.users[c.users["split"] == "train"] for c in train_cohorts])
    thresholds = protocol_thresholds(target, train_users, f"the training users of the {scheme} protocol")
    data = dict(target=target, normalization=norm, thresholds=thresholds)
    train_set = SequenceDataset(train_cohorts, split="train", **data)
    val_set = SequenceDataset(train_cohorts, split="validation", **data)
    test_set = SequenceDataset(test_cohorts, split="test" if scheme == "random" else None, **data)
    start = time.perf_counter()
    fit = train_model(kind, target, train_set, val_set, config, device, on_epoch, **model_kwargs)
    seconds = time.perf_counter() - start
    proba = predict_proba(fit.model, make_loader(test_set, config.batch_size), fit.device)
    return SchemeResult(
        scheme=scheme,
        model=fit.model,
        val_metrics=fit.history[fit.best_epoch - 1].val_metrics,
        test_metrics=metrics_for(target, test_set.labels, proba),
        predictions=prediction_frame(test_set.users, target, test_set.labels, proba),
        train_users=len(train_set),
        test_users=len(test_set),
        seconds=seconds,
        history=fit.history_rows(),
        best_epoch=fit.best_epoch,
        normalization=norm,
        thresholds=thresholds,
        validation=EvaluationRows(target, val_set.labels, cohorts=train_cohorts, split="validation"),
    )


def classical_experiment(
    kind: str,
    target: str,
    kpi: pd.DataFrame,
    labels: pd.DataFrame,
    scheme: str,
    config: classical.LogisticConfig | classical.XGBConfig | None = None,
) -> SchemeResult:
    """Train ``kind`` ("logreg" or "xgboost", with its ``config``) under one protocol; ``kpi`` and ``labels`` hold the same users
    of every training cohort (``labels``: user_id, split and the label components, e.g. ``label_scores``;
    ``kpi`` carries cohort_day)."""
    design = classical.kpi_design(kpi, labels)
    cohort_of = kpi["cohort_day"].to_numpy()
    train_cohorts, test_cohorts = split_cohorts(sorted(set(cohort_of)), scheme)
    in_train = np.isin(cohort_of, train_cohorts)
    train, val = in_train & design.rows("train"), in_train & design.rows("validation")
    test = np.isin(cohort_of, test_cohorts) & (design.rows("test") if scheme == "random" else True)
    thresholds = protocol_thresholds(target, design.labels[train], f"the training users of the {scheme} protocol")
    y = design.target(target, thresholds)
    start = time.perf_counter()
    if kind == "logreg":
        model = classical.fit_logistic(design.X[train], y[train], config=config or classical.LogisticConfig())
    else:
        model = classical.fit_xgboost(design.X[train], y[train], design.X[val], y[val], config or classical.XGBConfig(),
                                      n_classes=2 if target == "binary" else N_LEVELS)
    seconds = time.perf_counter() - start
    val_p = classical.predict_proba(model, design.X[val], target)
    test_p = classical.predict_proba(model, design.X[test], target)
    users = pd.DataFrame({"user_id": design.user_id[test], "cohort_day": cohort_of[test]})
    return SchemeResult(
        scheme=scheme,
        model=model,
        val_metrics=metrics_for(target, y[val], val_p),
        test_metrics=metrics_for(target, y[test], test_p),
        predictions=prediction_frame(users, target, y[test], test_p),
        train_users=int(train.sum()),
        test_users=int(test.sum()),
        seconds=seconds,
        history=[],
        thresholds=thresholds,
        validation=EvaluationRows(target, y[val], kpi=design.X[val].reset_index(drop=True)),
    )
