"""The evaluation protocols every churn and level model goes through, for the sequence and the classical models.

- ``random``: users of all training cohorts (the partition's window X-N+1 .. X), split by the seeded hash of
  the user id (``user_splits``): fit on ``train``, select on ``validation``, report on ``test``. This model
  is the one registered.
- ``out_of_time``: what a daily retrain faces. It tests on every user of the latest cohort X, scored on the
  day X's observation window closes (X + O - 1, O the observation days), and trains only on what was known
  that day: the last N cohorts whose label periods had closed by then, X-L-N+1 .. X-L (L the label days;
  their train split for fitting, their validation split for early stopping). The last training cohort thus
  starts L days before the test cohort and its labels close the day the test cohort is scored.
- ``out_of_time_adjacent`` (not run by the assets; ``bench/model_protocols.py`` measures it for comparison):
  the earlier protocol, training on X-N+1 .. X-1 right before the test cohort. Their label periods reach
  X + O + L - 2, into the test cohort's own label period, so no deployed model could have been trained
  that way, and its test figures are optimistic.

Everything fitted is fitted on the training rows of each protocol and stored with its result: the
normalisation of the networks' inputs (imputation medians, means and standard deviations) and, for the
level target, the P95 thresholds that turn label-period components into levels. So under the out-of-time
protocols the test cohort's levels come from thresholds of the earlier cohorts' training users, and nothing
of a test cohort shapes its own inputs or labels. The test rows are only reported: every choice (early
stopping, the registry's evidence rule) reads validation rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn_dagster.domain.engagement import N_LEVELS, Thresholds, fit_thresholds
from churn_dagster.stages.tensors.ml.data import (
    Normalization,
    SequenceDataset,
    fit_normalization,
    make_loader,
)
from churn_dagster.training.ml import classical
from churn_dagster.training.ml.champions import EvaluationRows
from churn_dagster.training.ml.metrics import metrics_for
from churn_dagster.training.ml.train import (
    EpochCallback,
    TrainConfig,
    predict_proba,
    train_model,
)

SCHEMES = ("random", "out_of_time")


@dataclass(frozen=True)
class Protocol:
    """Which cohorts a protocol trains on (train and validation splits) and which it tests on: the test split
    of the test cohorts under ``random``, every user of them out of time."""

    scheme: str
    train_cohorts: tuple
    test_cohorts: tuple

    @property
    def test_split(self) -> str | None:
        return "test" if self.scheme == "random" else None

    @property
    def cohorts(self) -> tuple:
        """Every cohort the protocol reads, oldest first."""
        return tuple(sorted(set(self.train_cohorts) | set(self.test_cohorts)))


def protocols(window: Sequence, earlier: Sequence) -> list[Protocol]:
    """The protocols of a model partition: ``random`` over its training ``window`` (oldest first, the partition's
    cohort last) and ``out_of_time`` on that last cohort, trained on the ``earlier`` cohorts whose labels had
    closed when its observation window did (left out when there are none yet)."""
    found = [Protocol("random", tuple(window), tuple(window))]
    if earlier:
        found.append(Protocol("out_of_time", tuple(earlier), (window[-1],)))
    return found


def adjacent_protocol(window: Sequence) -> Protocol:
    """The adjacent-cohort out-of-time variant (see the module docstring): for comparison only."""
    if len(window) < 2:
        raise ValueError("the adjacent out-of-time protocol needs at least two cohorts")
    return Protocol("out_of_time_adjacent", tuple(window[:-1]), (window[-1],))


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


def sequence_experiment(
    kind: str,
    target: str,
    cohorts: dict,
    protocol: Protocol,
    config: TrainConfig,
    device=None,
    on_epoch: EpochCallback | None = None,
    **model_kwargs,
) -> SchemeResult:
    """Train ``kind`` ("lstm" or "hybrid") under ``protocol``; ``cohorts`` maps each cohort day it reads to its
    :class:`CohortTensors`, resolved once by the caller for every protocol of the step, so a rebuild during
    training cannot mix versions."""
    train_cohorts = [cohorts[c] for c in protocol.train_cohorts]
    test_cohorts = [cohorts[c] for c in protocol.test_cohorts]
    scheme = protocol.scheme
    norm = fit_normalization(train_cohorts)
    train_users = pd.concat([c.users[c.users["split"] == "train"] for c in train_cohorts])
    thresholds = protocol_thresholds(target, train_users, f"the training users of the {scheme} protocol")
    data = dict(target=target, normalization=norm, thresholds=thresholds)
    train_set = SequenceDataset(train_cohorts, split="train", **data)
    val_set = SequenceDataset(train_cohorts, split="validation", **data)
    test_set = SequenceDataset(test_cohorts, split=protocol.test_split, **data)
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
    protocol: Protocol,
    config: classical.LogisticConfig | classical.XGBConfig | None = None,
) -> SchemeResult:
    """Train ``kind`` ("logreg" or "xgboost", with its ``config``) under ``protocol``; ``kpi`` and ``labels`` hold
    the same users of every cohort it reads (``labels``: user_id, split and the label components, e.g.
    ``label_scores``; ``kpi`` carries cohort_day)."""
    design = classical.kpi_design(kpi, labels)
    cohort_of = kpi["cohort_day"].to_numpy()
    day_of = pd.to_datetime(kpi["cohort_day"]).dt.date.to_numpy()
    scheme = protocol.scheme
    in_train = np.isin(day_of, protocol.train_cohorts)
    train, val = in_train & design.rows("train"), in_train & design.rows("validation")
    test = np.isin(day_of, protocol.test_cohorts) & (design.rows("test") if protocol.test_split else True)
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
