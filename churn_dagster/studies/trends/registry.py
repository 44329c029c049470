"""The MLflow registry side of the trend models: the logged model of the best seed, and the champion rule.

The rule is the churn models' (:mod:`churn_dagster.training.registry`, whose evidence gate, version creation
and alias this reuses): a version is registered only with enough validation evidence above chance, the
``champion`` alias moves only after the model's blocking check passed, and only to a version that beats the
current champion on the same rows, here the challenger's validation users scored by both models with the
task's decision metric (macro F1 or AUC over the judged classes). Numbers recorded on other users (another
partition's window) would not compare.

Each champion is scored with its own preprocessing: its macro scaling is logged with the network, and a model
that reads intents carries the topic model it was trained with (``intents.json``), from which the rows'
intent vectors are recomputed for it; the same number of topics from another LDA would be other topics. A
champion that reads other inputs than these rows offer (other macro features or event types) cannot be scored
on them and is replaced; each version records its inputs in an ``inputs`` tag for that test.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import torch
from mlflow.models import infer_signature

from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.studies.trends.ml.data import MacroScaling, TrendBatches, TrendData
from churn_dagster.studies.trends.ml.experiments import CLASS_NAMES, TrendResult, predict
from churn_dagster.studies.trends.ml.hyperparameters import CLASSICAL_MODELS
from churn_dagster.studies.trends.ml.intents import IntentModel
from churn_dagster.studies.trends.ml.networks import trend_loader
from churn_dagster.training.ml.evidence import AUC, MACRO_F1, METRIC_LABELS, EvidencePolicy, decision_score
from churn_dagster.training.mlflow_logging import log_sklearn_like_model
from churn_dagster.training.registry import CHAMPION, Promotion, champion_version

SCALING_FILE = "macro_scaling.json"
INTENTS_FILE = "intents.json"
INTENT_MODELS = ("digmn", "digmn_static")
# The evidence rule's decision metric of each task: the paper's headline (macro F1 of the 3-class day task,
# AUROC of the binary session task) over the classes with enough validation users.
DECISION_METRICS = {"day": MACRO_F1, "session": AUC}
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
    if model_name in INTENT_MODELS:  # intents are recomputed with the model's own topic model: its event types
        signature["intent_events"] = list(data.event_columns)
    return signature


def log_trend_model(result: TrendResult, data: TrendData, intents: IntentModel) -> str:
    """The fitted model into the active MLflow run, in its own flavor; a network pickled (packed LSTMs do not
    trace) with its macro scaling and, when it reads intents, the topic model ``intents`` that made them, as
    extra files. Returns the model URI."""
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
        extra = [Path(tmp) / SCALING_FILE]
        extra[0].write_text(json.dumps({k: np.asarray(v).tolist() for k, v in result.scaling.__dict__.items()}))
        if result.model_name in INTENT_MODELS:
            extra.append(Path(tmp) / INTENTS_FILE)
            extra[1].write_text(json.dumps(intents.to_dict()))
        return mlflow.pytorch.log_model(
            model, name="model", signature=signature, serialization_format="pickle",
            extra_files=[str(f) for f in extra], pip_requirements=[f"torch>={torch.__version__.split('+')[0]}"],
        ).model_uri


def load_trend_version(resource: MlflowResource, name: str, model_name: str, version: str):
    """The registered model ``name`` at ``version``, its macro scaling (None for the classical models) and its
    topic model (None unless it reads intents)."""
    mlflow.set_tracking_uri(resource.tracking_uri)
    uri = f"models:/{name}/{version}"
    if model_name == "xgboost":
        return mlflow.xgboost.load_model(uri), None, None
    if model_name in CLASSICAL_MODELS:
        return mlflow.sklearn.load_model(uri), None, None
    local = Path(mlflow.artifacts.download_artifacts(uri))
    scaling = json.loads((local / "extra_files" / SCALING_FILE).read_text())
    intents_file = local / "extra_files" / INTENTS_FILE
    intents = IntentModel.from_dict(json.loads(intents_file.read_text())) if intents_file.exists() else None
    return (mlflow.pytorch.load_model(str(local)), MacroScaling(**{k: np.asarray(v) for k, v in scaling.items()}),
            intents)


def promote_trend(resource: MlflowResource, name: str, version: str, challenger: TrendResult,
                  data: TrendData, policy: EvidencePolicy) -> Promotion:
    """Move the alias to ``version`` (the model of ``challenger``) if it beats the current champion on the
    validation users of ``data``, each scored with its own preprocessing."""
    client = resource.client()
    current = champion_version(client, name)
    task, rows = challenger.task, data.rows("validation")
    metric, n = DECISION_METRICS[task], int(rows.sum())
    y = data.labels(task)[rows]
    judged = policy.judged_classes(y, len(CLASS_NAMES[task]))
    mine = decision_score(metric, y, predict(challenger.model_name, task, challenger.model, challenger.scaling, data,
                                             rows), judged)
    label = METRIC_LABELS[metric]
    theirs = None
    if current is None:
        promoted, reason = True, f"{name} is the first champion ({label} {mine:.4f} on {n} validation users)"
    elif json.loads(current.tags.get("inputs", "null")) != input_signature(challenger.model_name, data):
        promoted, reason = True, (f"the champion v{current.version} reads other inputs than these rows offer; "
                                  f"{name} replaces it")
    else:
        model, scaling, intents = load_trend_version(resource, name, challenger.model_name, current.version)
        if challenger.model_name in INTENT_MODELS and intents is None:
            promoted, reason = True, (f"the champion v{current.version} has no stored topic model to compute its "
                                      f"intents; {name} replaces it")
        else:
            own = data.with_intents(intents) if intents is not None else data
            theirs = decision_score(metric, y, predict(challenger.model_name, task, model, scaling, own, rows), judged)
            promoted = bool(mine > theirs) or not np.isfinite(theirs)
            reason = (f"{name} ({label} {mine:.4f}) {'beats' if promoted else 'does not beat'} the champion "
                      f"v{current.version} ({label} {theirs:.4f}, its own intents) on the same {n} validation users"
                      if challenger.model_name in INTENT_MODELS else
                      f"{name} ({label} {mine:.4f}) {'beats' if promoted else 'does not beat'} the champion "
                      f"v{current.version} ({label} {theirs:.4f}) on the same {n} validation users")
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
    return Promotion(name, version, promoted, reason, current.version if current else None, mine, theirs)
