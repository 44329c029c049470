"""The MLflow registry side of the trend models: the logged model of the best seed, and the champion rule.

The rule is the churn models' (:mod:`churn_dagster.defs.models.registry`, whose version creation and alias
this reuses): the ``champion`` alias moves only after the model's blocking check passed, and only to a version
that beats the current champion on the same rows, here the challenger's validation users scored by both
models with the task's headline metric (macro F1 or AUROC). Numbers recorded on other users (another
partition's window) would not compare. A champion that reads other inputs than these rows offer (other macro
features, another number of intents) cannot be scored on them and is replaced; each version records its
inputs in an ``inputs`` tag for that test.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.models import infer_signature

from churn_dagster.defs.mlflow_resource import MlflowResource
from churn_dagster.defs.models.mlflow_logging import log_sklearn_like_model
from churn_dagster.defs.models.registry import CHAMPION, Promotion, champion_version
from churn_dagster.ml.trend_data import MacroScaling, TrendBatches, TrendData
from churn_dagster.ml.trend_experiments import (
    HEADLINE,
    METRIC_LABELS,
    TrendResult,
    headline,
    predict,
    trend_metrics,
)
from churn_dagster.ml.trend_hyperparameters import CLASSICAL_MODELS
from churn_dagster.ml.trend_networks import trend_loader

SCALING_FILE = "macro_scaling.json"
# Types that skops, MLflow's safe format, does not trust by itself: the MLP's fitted Adam optimizer.
SKOPS_TRUSTED = {"logreg": (), "mlp": ("sklearn.neural_network._stochastic_optimizers.AdamOptimizer",)}


def input_signature(model_name: str, data: TrendData) -> dict:
    """What of ``data`` the model reads, as widths and column names: two models with the same signature can
    score the same rows."""
    signature: dict = {}
    if model_name != "activity_lstm":
        signature["macro"] = [str(c) for c in data.macro.columns]
    if model_name in ("activity_lstm", "multichannel"):
        signature["daily"] = [int(n) for n in data.daily.shape[1:]]
    if model_name in ("multichannel", "digmn", "digmn_static"):
        signature["behaviour"] = int(data.behaviour.shape[1])
    if model_name in ("digmn", "digmn_static"):
        signature["intents"] = int(data.intents.shape[1])
    return signature


def log_trend_model(result: TrendResult, data: TrendData) -> str:
    """The fitted model into the active MLflow run, in its own flavor; a network pickled (packed LSTMs do not
    trace) with its macro scaling as an extra file. Returns the model URI."""
    if result.model_name in CLASSICAL_MODELS:
        sample = data.macro[data.rows("validation")].head(50)
        if result.model_name == "xgboost":
            return log_sklearn_like_model(result, sample, "xgboost")
        return log_sklearn_like_model(result, sample, "sklearn", ("numpy.dtype", *SKOPS_TRUSTED[result.model_name]))
    model = result.model.to("cpu").eval()
    rows = np.flatnonzero(data.rows("validation"))[:4]
    mask = np.zeros(len(data.users), dtype=bool)
    mask[rows] = True
    sample = TrendBatches(data, result.task, result.scaling, mask, model.max_sessions)
    batch = next(iter(trend_loader(sample, model, 4)))
    with torch.no_grad():
        out = model(batch.seq, batch.lengths, batch.static).numpy()
    signature = infer_signature(
        {"seq": batch.seq.numpy(), "lengths": batch.lengths.numpy(), "static": batch.static.numpy()}, out)
    with tempfile.TemporaryDirectory() as tmp:
        scaling = Path(tmp) / SCALING_FILE
        scaling.write_text(json.dumps({k: np.asarray(v).tolist() for k, v in result.scaling.__dict__.items()}))
        return mlflow.pytorch.log_model(
            model, name="model", signature=signature, serialization_format="pickle", extra_files=[str(scaling)],
            pip_requirements=[f"torch>={torch.__version__.split('+')[0]}"],
        ).model_uri


def load_trend_version(resource: MlflowResource, name: str, model_name: str, version: str):
    """The registered model ``name`` at ``version`` and its macro scaling (None for the classical models)."""
    mlflow.set_tracking_uri(resource.tracking_uri)
    uri = f"models:/{name}/{version}"
    if model_name == "xgboost":
        return mlflow.xgboost.load_model(uri), None
    if model_name in CLASSICAL_MODELS:
        return mlflow.sklearn.load_model(uri), None
    local = Path(mlflow.artifacts.download_artifacts(uri))
    scaling = json.loads((local / "extra_files" / SCALING_FILE).read_text())
    return mlflow.pytorch.load_model(str(local)), MacroScaling(**{k: np.asarray(v) for k, v in scaling.items()})


def promote_trend(resource: MlflowResource, name: str, version: str, challenger: TrendResult,
                  data: TrendData) -> Promotion:
    """Move the alias to ``version`` (the model of ``challenger``) if it beats the current champion on the
    validation users of ``data``; record the decision on the version either way."""
    client = resource.client()
    current = champion_version(client, name)
    task, rows = challenger.task, data.rows("validation")
    metric, mine, n = METRIC_LABELS[HEADLINE[task]], challenger.val_headline, int(rows.sum())
    if current is None:
        promoted, reason = True, f"{name} is the first champion ({metric} {mine:.4f} on {n} validation users)"
    elif not np.isfinite(mine):
        promoted, reason = False, f"{name} cannot be compared: its {metric} on {n} validation users is undefined"
    elif json.loads(current.tags.get("inputs", "null")) != input_signature(challenger.model_name, data):
        promoted, reason = True, (f"the champion v{current.version} reads other inputs than these rows offer; "
                                  f"{name} replaces it")
    else:
        model, scaling = load_trend_version(resource, name, challenger.model_name, current.version)
        proba = predict(challenger.model_name, task, model, scaling, data, rows)
        theirs = headline(task, trend_metrics(task, data.labels(task)[rows], proba))
        promoted = bool(mine > theirs)
        reason = (f"{name} ({metric} {mine:.4f}) {'beats' if promoted else 'does not beat'} the champion "
                  f"v{current.version} ({metric} {theirs:.4f}) on the same {n} validation users")
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "champion_decision", reason)
    return Promotion(name, version, promoted, reason, current.version if current else None)
