"""Fit and evaluate the continuation models: one model per family and horizon, on examples split by user.

The user split is ``user_splits``' (a seeded hash of the user id), so every example of a user lies in one split
and no user's requests inform both a model and its test score. Training rows fit the model (and the LSTM's
normalisation), validation rows choose XGBoost's rounds and the LSTM's best epoch and serve the champion rule,
test rows are reported. Per horizon the headline is ROC-AUC of "continues for h more minutes"; average
precision is reported beside it because positives are rare (how rare depends on the data, see docs/MODELS.md).

The classical models reuse :mod:`churn_dagster.training.ml.classical` unchanged. The LSTM is the churn study's hybrid
network (:class:`~churn_dagster.training.ml.networks.HybridLSTM`: a packed LSTM over the steps, attention over its valid
states, an MLP over the static vector), here over the requests of the session so far with the user's history
as the static vector, trained by the shared loop :func:`churn_dagster.training.ml.train.fit`.

A horizon whose training examples hold one class only (no session that long in a small data set) is not
trained: the result says why instead of reporting a made-up score.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from churn_dagster.stages.tensors.ml.data import Normalization, make_loader
from churn_dagster.studies.continuation.ml.config import PrefixNetwork
from churn_dagster.studies.continuation.ml.data import (
    NCM_LAYOUT,
    PrefixDataset,
    Prefixes,
    PrefixLayout,
    labels,
    tabular_features,
)
from churn_dagster.training.ml import classical
from churn_dagster.training.ml.champions import EvaluationRows, IncompatibleModel
from churn_dagster.training.ml.evidence import AUC, EvidencePolicy, decision_score
from churn_dagster.training.ml.hyperparameters import LogisticConfig, TrainConfig, XGBConfig
from churn_dagster.training.ml.networks import build_model
from churn_dagster.training.ml.train import EpochCallback, default_device, fit, predict_proba, seed_everything

SPLITS = ("train", "validation", "test")


def horizon_metrics(y: np.ndarray, p: np.ndarray) -> dict:
    """ROC-AUC and average precision (NaN when the rows hold one class), with the counts behind them."""
    y = np.asarray(y).astype(np.int64)
    both = 0 < y.sum() < len(y)
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else math.nan,
        "average_precision": float(average_precision_score(y, p)) if both else math.nan,
        "examples": int(len(y)),
        "positives": int(y.sum()),
        "positive_rate": float(y.mean()) if len(y) else math.nan,
    }


@dataclass
class HorizonResult:
    """One family at one horizon: the fitted model (None when ``skipped`` says why not) and its scores."""

    family: str
    horizon_min: int
    model: object | None
    val_metrics: dict
    test_metrics: dict
    predictions: pd.DataFrame
    train_examples: int
    train_positives: int
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    normalization: Normalization | None = None
    validation: object | None = None  # the rows the champion rule compares on, with their labels
    skipped: str | None = None
    val_proba: np.ndarray | None = None  # the model's probabilities on the validation rows, for the evidence rule

    @property
    def test_auc(self) -> float:
        return self.test_metrics["roc_auc"]


def _splits(examples: pd.DataFrame) -> dict[str, np.ndarray]:
    split = examples["split"].to_numpy()
    return {s: np.flatnonzero(split == s) for s in SPLITS}


def _untrainable(y: np.ndarray, rows: dict[str, np.ndarray]) -> str | None:
    train = y[rows["train"]]
    if len(rows["validation"]) == 0 or len(train) == 0:
        return f"{len(train)} training and {len(rows['validation'])} validation examples: too few to train on"
    if train.min() == train.max():
        return f"the {len(train)} training examples hold one class only ({int(train.sum())} continue)"
    return None


def _predictions(examples: pd.DataFrame, rows: np.ndarray, y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"user_id": examples["user_id"].to_numpy()[rows],
                         "request_ms": examples["request_ms"].to_numpy()[rows], "y": y[rows], "p": p})


def _skipped(family: str, horizon: int, y: np.ndarray, rows: dict, reason: str) -> HorizonResult:
    empty = horizon_metrics(np.zeros(0), np.zeros(0))
    return HorizonResult(family, horizon, None, empty, empty, pd.DataFrame(columns=["user_id", "request_ms", "y", "p"]),
                         len(rows["train"]), int(y[rows["train"]].sum()), skipped=reason)


def train_tabular(family: str, examples: pd.DataFrame, horizon: int,
                  config: LogisticConfig | XGBConfig | None = None, features: tuple | None = None) -> HorizonResult:
    """Logistic regression (``"logreg"``) or XGBoost (``"xgboost"``) on the tabular features (``features``:
    (columns, those read as log(1 + x)) where they are not the NCM examples')."""
    X = tabular_features(examples) if features is None else tabular_features(examples, *features)
    y, rows = labels(examples, horizon).astype(np.int64), _splits(examples)
    reason = _untrainable(y, rows)
    if reason:
        return _skipped(family, horizon, y, rows, reason)
    train, val, test = (rows[s] for s in SPLITS)
    start = time.perf_counter()
    if family == "logreg":
        model = classical.fit_logistic(X.iloc[train], y[train], config=config or LogisticConfig())
    else:
        model = classical.fit_xgboost(X.iloc[train], y[train], X.iloc[val], y[val], config or XGBConfig(), n_classes=2)
    seconds = time.perf_counter() - start
    p_val, p_test = (classical.predict_proba(model, X.iloc[r], "binary") if len(r) else np.zeros(0) for r in (val, test))
    return HorizonResult(
        family, horizon, model, horizon_metrics(y[val], p_val), horizon_metrics(y[test], p_test),
        _predictions(examples, test, y, p_test), len(train), int(y[train].sum()), seconds,
        validation=EvaluationRows("binary", y[val], kpi=X.iloc[val].reset_index(drop=True)), val_proba=p_val,
    )


@dataclass
class PrefixRows:
    """Examples scored through their prefixes, for the champion rule (:func:`churn_dagster.training.ml.champions.judge`
    reads ``auc`` and ``len``): every LSTM is scored on the same rows with its own normalisation."""

    prefixes: Prefixes
    index: np.ndarray
    y: np.ndarray  # labels of every example of ``prefixes``
    policy: EvidencePolicy = field(default_factory=EvidencePolicy)

    def __len__(self) -> int:
        return len(self.index)

    def proba(self, model, normalization: Normalization | None) -> np.ndarray:
        if normalization is None:
            raise IncompatibleModel("the network has no normalisation")
        try:
            data = PrefixDataset(self.prefixes, self.index, self.y, normalization)
        except ValueError as exc:
            raise IncompatibleModel(str(exc)) from exc
        return predict_proba(model, make_loader(data, 512), "cpu")

    def auc(self, family: str, model, normalization: Normalization | None = None) -> float:
        if family != "lstm":
            raise IncompatibleModel(f"request prefixes are read by the LSTM, not by {family}")
        y = self.y[self.index].astype(np.int64)
        return decision_score(AUC, y, self.proba(model, normalization), self.policy.judged_classes(y, 2))


def build_prefix_lstm(network: PrefixNetwork, layout: PrefixLayout = NCM_LAYOUT):
    return build_model("hybrid", 1, n_features=len(layout.steps), n_static=len(layout.static), **network.kwargs())


def train_prefix_lstm(prefixes: Prefixes, horizon: int, config: TrainConfig, network: PrefixNetwork,
                      device=None, on_epoch: EpochCallback | None = None) -> HorizonResult:
    """The LSTM over each example's request prefix, trained by the shared loop (best validation epoch kept)."""
    examples, y, rows = prefixes.examples, labels(prefixes.examples, horizon), _splits(prefixes.examples)
    reason = _untrainable(y, rows)
    if reason:
        return _skipped("lstm", horizon, y, rows, reason)
    train, val, test = (rows[s] for s in SPLITS)
    norm = prefixes.fit_normalization(train)
    device = device or default_device()
    seed_everything(config.seed)
    model = build_prefix_lstm(network, prefixes.layout)
    pin = str(device).startswith("cuda")
    loader = lambda index, shuffle=False: make_loader(  # noqa: E731
        PrefixDataset(prefixes, index, y, norm), config.batch_size, shuffle, config.seed, config.num_workers, pin)
    start = time.perf_counter()
    fitted = fit(model, loader(train, True), loader(val), config, device, on_epoch)
    seconds = time.perf_counter() - start
    p_val, p_test = (predict_proba(fitted.model, loader(r), fitted.device) if len(r) else np.zeros(0) for r in (val, test))
    return HorizonResult(
        "lstm", horizon, fitted.model, horizon_metrics(y[val], p_val), horizon_metrics(y[test], p_test),
        _predictions(examples, test, y, p_test), len(train), int(y[train].sum()), seconds,
        history=fitted.history_rows(), best_epoch=fitted.best_epoch, normalization=norm,
        validation=PrefixRows(prefixes, val, y), val_proba=p_val,
    )
