"""The DIGMN comparison: each of the seven models trained for one trend task with one seed, evaluated the
paper's way, and the mean ± std over seeds.

Every model sees the same users and splits (the rows of one :class:`TrendData`): it is fit on the ``train``
rows, selected on the ``validation`` rows (early stopping of the networks and of XGBoost) and reported on the
``test`` rows. The headline metric is the paper's: macro F1 for the 3-class day-level task, ROC-AUC for the
binary session-level task; each result carries the other metric and the accuracy too.

Whatever is fitted is fitted on the training rows only: the networks' :class:`MacroScaling` (returned with
the result, since scoring needs it), and the imputation and scaling inside the logistic regression's and the
MLP's Pipelines (which is why those have no separate scaling; XGBoost reads the raw features, missing values
included). The MLP stops early on a tenth of the training rows (scikit-learn's own split), not on ``validation``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from churn_dagster.studies.trends.ml.baselines import fit_mlp
from churn_dagster.studies.trends.ml.data import TASKS, MacroScaling, TrendBatches, TrendData
from churn_dagster.studies.trends.ml.hyperparameters import (
    CLASSICAL_MODELS,
    TREND_MODELS,
    BaselineShape,
    MlpConfig,
    SessionWindow,
    settings_of,
)
from churn_dagster.studies.trends.ml.networks import TrendNet, build_network, trend_loader
from churn_dagster.studies.trends.sql.trends import DAY_TREND_CLASSES, SESSION_TREND_CLASSES
from churn_dagster.training.ml import classical
from churn_dagster.training.ml.hyperparameters import (
    DigmnConfig,
    LogisticConfig,
    TrainConfig,
    XGBConfig,
)
from churn_dagster.training.ml.metrics import binary_metrics, multiclass_metrics
from churn_dagster.training.ml.train import (
    EpochCallback,
    default_device,
    fit,
    predict_proba,
    seed_everything,
)

CLASS_NAMES = {"day": DAY_TREND_CLASSES, "session": SESSION_TREND_CLASSES}
HEADLINE = {"day": "f1_macro", "session": "roc_auc"}  # the paper's metric of each task
OTHER = {"day": "roc_auc_ovr_macro", "session": "f1_macro"}
METRIC_LABELS = {"f1_macro": "macro F1", "roc_auc": "AUROC", "roc_auc_ovr_macro": "OvR AUROC (macro)"}
SPLITS = ("train", "validation", "test")


def trend_metrics(task: str, y: np.ndarray, proba: np.ndarray) -> dict:
    """Every metric of the task, its classes named (session: 1 = sessions per day decrease)."""
    names = CLASS_NAMES[task]
    return binary_metrics(y, proba, names=names) if len(names) == 2 else multiclass_metrics(y, proba, names)


def headline(task: str, metrics: dict) -> float:
    return float(metrics[HEADLINE[task]])


@dataclass
class TrendResult:
    """One model, task and seed. ``epochs``: epochs trained by a network (the MLP included), None for the
    logistic regression and XGBoost; ``scaling``: the networks' macro scaling, None where the fitted model
    holds its own preprocessing."""

    model_name: str
    task: str
    seed: int
    val_metrics: dict
    test_metrics: dict
    seconds: float
    epochs: int | None
    model: object
    scaling: MacroScaling | None
    users: dict[str, int]
    best_epoch: int | None = None
    history: list[dict] = field(default_factory=list)

    @property
    def val_headline(self) -> float:
        return headline(self.task, self.val_metrics)

    @property
    def test_headline(self) -> float:
        return headline(self.task, self.test_metrics)


def _class_proba(model, X: pd.DataFrame, n_classes: int) -> np.ndarray:
    """P(class 1) for a binary task, else ``[N, K]`` with a zero column for a class the model never saw."""
    proba = model.predict_proba(X)
    full = np.zeros((len(X), n_classes))
    full[:, np.asarray(model.classes_, dtype=np.int64)] = proba
    return full[:, 1] if n_classes == 2 else full


def predict(model_name: str, task: str, model, scaling: MacroScaling | None, data: TrendData, rows: np.ndarray,
            device: torch.device | str = "cpu") -> np.ndarray:
    """The probabilities of ``model`` (a result's, or a registered one's) for the users of ``rows``."""
    if model_name in CLASSICAL_MODELS:
        return _class_proba(model, data.macro[rows], TASKS[task][1])
    batches = TrendBatches(data, task, scaling, rows, model.max_sessions)
    return predict_proba(model, trend_loader(batches, model, 512), device)


def _fit_classical(model_name: str, task: str, data: TrendData, seed: int, params: tuple):
    train, val = data.rows("train"), data.rows("validation")
    X, y = data.macro, data.labels(task)
    if model_name == "logreg":  # lbfgs is deterministic: the seed changes nothing, and the std says so
        model = classical.fit_logistic(X[train], y[train], config=settings_of(params, LogisticConfig))
        return model, None
    if model_name == "xgboost":
        config = replace(settings_of(params, XGBConfig), seed=seed)
        return classical.fit_xgboost(X[train], y[train], X[val], y[val], config, n_classes=TASKS[task][1]), None
    model = fit_mlp(X[train], y[train], seed=seed, max_iter=settings_of(params, MlpConfig).max_iter)
    return model, int(model.named_steps["model"].n_iter_)


def _fit_network(model_name: str, task: str, data: TrendData, seed: int, params: tuple, device: torch.device,
                 on_epoch: EpochCallback | None) -> tuple[TrendNet, MacroScaling, object]:
    config = replace(settings_of(params, TrainConfig), seed=seed)
    window = next((p.max_sessions for p in params if isinstance(p, SessionWindow)), SessionWindow().max_sessions)
    hidden = next((p.hidden_size for p in params if isinstance(p, BaselineShape)), BaselineShape().hidden_size)
    digmn = next((p for p in params if isinstance(p, DigmnConfig)), None)
    scaling = MacroScaling.fit(data.macro, data.rows("train"))
    seed_everything(seed)  # before building, so the initial weights follow the seed too
    model = build_network(model_name, data, CLASS_NAMES[task], hidden, window, digmn)
    train = trend_loader(TrendBatches(data, task, scaling, data.rows("train"), window), model, config.batch_size,
                         shuffle=True, seed=seed, num_workers=config.num_workers)
    val = trend_loader(TrendBatches(data, task, scaling, data.rows("validation"), window), model, 512)
    return model, scaling, fit(model, train, val, config, device, on_epoch)


def train_trend_model(model_name: str, task: str, data: TrendData, seed: int, params: tuple,
                      device: torch.device | str | None = None, on_epoch: EpochCallback | None = None) -> TrendResult:
    """Fit ``model_name`` for ``task`` on the training rows with ``seed`` and hyperparameters ``params`` (the
    model's tuple of :data:`~churn_dagster.studies.trends.ml.hyperparameters.TREND_DEFAULTS`, possibly changed), and
    score it on the validation and test rows. ``on_epoch`` follows the networks' epochs."""
    if model_name not in TREND_MODELS:
        raise ValueError(f"model must be one of {TREND_MODELS}, got {model_name!r}")
    users = {s: int(data.rows(s).sum()) for s in SPLITS}
    if not all(users.values()):
        raise ValueError(f"every split needs users to train, select and report on; got {users}")
    device = torch.device(device) if device is not None else default_device()
    start = time.perf_counter()
    history, best_epoch, scaling = [], None, None
    if model_name in CLASSICAL_MODELS:
        model, epochs = _fit_classical(model_name, task, data, seed, params)
        device = torch.device("cpu")
    else:
        model, scaling, fitted = _fit_network(model_name, task, data, seed, params, device, on_epoch)
        epochs, best_epoch, history = len(fitted.history), fitted.best_epoch, fitted.history_rows()
    seconds = time.perf_counter() - start
    y = data.labels(task)
    metrics = {}
    for split in ("validation", "test"):
        rows = data.rows(split)
        metrics[split] = trend_metrics(task, y[rows], predict(model_name, task, model, scaling, data, rows, device))
    return TrendResult(model_name, task, seed, metrics["validation"], metrics["test"], seconds, epochs, model,
                       scaling, users, best_epoch, history)


def summarize(results: list[TrendResult]) -> pd.DataFrame:
    """Per model and task (in the order first met): the number of seeds and the mean ± std over them of the
    validation and test headline, the test accuracy and other metric, and the training seconds. The std is
    the population one (``ddof=0``): the spread of the seeds that were run, 0 for a single seed."""
    rows = []
    keys = dict.fromkeys((r.model_name, r.task) for r in results)
    for model_name, task in keys:
        group = [r for r in results if (r.model_name, r.task) == (model_name, task)]

        def spread(values) -> tuple[float, float]:
            values = np.asarray(values, dtype=np.float64)
            return float(values.mean()), float(values.std())

        val, test = spread([r.val_headline for r in group]), spread([r.test_headline for r in group])
        accuracy = spread([r.test_metrics["accuracy"] for r in group])
        other = spread([r.test_metrics[OTHER[task]] for r in group])
        rows.append({
            "model": model_name, "task": task, "metric": METRIC_LABELS[HEADLINE[task]], "seeds": len(group),
            "val_mean": val[0], "val_std": val[1], "test_mean": test[0], "test_std": test[1],
            "test_accuracy_mean": accuracy[0], "test_accuracy_std": accuracy[1],
            "other_metric": METRIC_LABELS[OTHER[task]], "test_other_mean": other[0], "test_other_std": other[1],
            "seconds_mean": float(np.mean([r.seconds for r in group])),
        })
    return pd.DataFrame(rows)
