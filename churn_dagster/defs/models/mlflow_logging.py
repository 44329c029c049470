"""What every training run leaves behind: MLflow params, curves, metrics, plots and the model, plus the
files the evaluation report reads from the model asset."""

import importlib.metadata
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import sklearn
import torch
import xgboost
from mlflow.models import infer_signature

from churn_dagster.domain.engagement import LEVEL_NAMES
from churn_dagster.ml import plots
from churn_dagster.ml.experiments import SchemeResult
from churn_dagster.ml.metrics import flatten_metrics, headline_auc
from churn_dagster.transforms.duck import atomic_path

CLASS_NAMES = {"binary": ["active", "churned"], "level": list(LEVEL_NAMES)}


def log_params(params: dict) -> None:
    mlflow.log_params(params)


def epoch_logger(target: str, say: Callable[[str], None] | None = None, label: str = ""):
    """An ``on_epoch`` callback that writes the learning curves into the active MLflow run and, with ``say``
    (the step's ``context.log.info``), a progress line per epoch: ``label``, the losses, the validation AUC
    and the epoch's seconds (training and validation, since the previous line), so that minutes of training
    never pass in silence."""
    last = [time.perf_counter()]

    def log(epoch: int, train_loss: float, val_loss: float, val_metrics: dict, lr: float) -> None:
        auc = headline_auc(target, val_metrics)
        mlflow.log_metrics({"train_loss": train_loss, "val_loss": val_loss, "lr": lr, "val_auc_epoch": auc}, step=epoch)
        now = time.perf_counter()
        if say is not None:
            say(f"{label} epoch {epoch}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, val AUC {auc:.4f}, "
                f"{now - last[0]:.1f} s")
        last[0] = now

    return log


def log_result(result: SchemeResult, target: str, title: str) -> None:
    """Metrics, plots and predictions of one protocol into the active MLflow run."""
    mlflow.log_metrics({"val_auc": headline_auc(target, result.val_metrics),
                        "test_auc": headline_auc(target, result.test_metrics),
                        "train_users": result.train_users, "test_users": result.test_users,
                        "train_seconds": result.seconds})
    mlflow.log_metrics(flatten_metrics(result.val_metrics, "val_"))
    mlflow.log_metrics(flatten_metrics(result.test_metrics, "test_"))
    for row in result.history:
        mlflow.log_metric("sequences_per_second", row["sequences_per_second"], step=row["epoch"])
    names = CLASS_NAMES[target]
    proba = _proba(result, target)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        plots.plot_confusion_matrix(result.test_metrics["confusion_matrix"], names, out / "confusion_matrix.png",
                                    title=f"{title}: confusion matrix (test)")
        plots.plot_roc_curves(result.predictions["y"].to_numpy(), proba, names, out / "roc.png", title=f"{title}: ROC (test)")
        plots.plot_class_metrics(result.test_metrics, out / "class_metrics.png", title=f"{title}: per-class metrics (test)")
        if result.history:
            plots.plot_learning_curves(result.history, out / "learning_curves.png", result.best_epoch, title=title)
        result.predictions.to_parquet(out / "test_predictions.parquet", index=False)
        (out / "metrics.json").write_text(json.dumps({"validation": result.val_metrics, "test": result.test_metrics}, indent=2))
        if result.thresholds is not None:  # what turned this protocol's label components into levels
            (out / "label_thresholds.json").write_text(json.dumps(result.thresholds.to_dict(), indent=2))
        mlflow.log_artifacts(str(out))


def _proba(result: SchemeResult, target: str) -> np.ndarray:
    frame = result.predictions
    return frame["p"].to_numpy() if target == "binary" else frame[[f"p_{k}" for k in range(len(LEVEL_NAMES))]].to_numpy()


def log_torch_model(result: SchemeResult, sample_batch) -> str:
    """The network (eager, pickled: packed LSTMs do not export to a traced graph) with its normalisation."""
    model = result.model.to("cpu").eval()
    with torch.no_grad():
        out = model(sample_batch.seq, sample_batch.lengths, sample_batch.static).numpy()
    signature = infer_signature(
        {"seq": sample_batch.seq.numpy(), "lengths": sample_batch.lengths.numpy(), "static": sample_batch.static.numpy()},
        out,
    )
    with tempfile.TemporaryDirectory() as tmp:
        norm = Path(tmp) / "normalization.json"
        norm.write_text(json.dumps(result.normalization.to_dict()))
        return mlflow.pytorch.log_model(
            model, name="model", signature=signature, serialization_format="pickle", extra_files=[str(norm)],
            pip_requirements=[f"torch>={torch.__version__.split('+')[0]}"],
        ).model_uri


def log_sklearn_like_model(result: SchemeResult, X_sample, flavor: str,
                           trusted_types: tuple[str, ...] = ("numpy.dtype",)) -> str:
    """A logistic-regression Pipeline (sklearn flavor) or an XGBoost classifier (xgboost flavor).
    ``trusted_types``: what skops may load besides scikit-learn's own estimators (an MLP adds its optimizer)."""
    signature = infer_signature(X_sample, result.model.predict_proba(X_sample))
    # Explicit requirements: MLflow's inference would import the whole environment to guess them.
    if flavor == "sklearn":
        # skops (MLflow's safe format) lists numpy dtypes as untrusted; the Pipeline holds only sklearn objects.
        info = mlflow.sklearn.log_model(result.model, name="model", signature=signature,
                                        input_example=X_sample.head(3), skops_trusted_types=list(trusted_types),
                                        pip_requirements=[f"scikit-learn=={sklearn.__version__}", "skops"])
    else:
        info = mlflow.xgboost.log_model(result.model, name="model", signature=signature, input_example=X_sample.head(3),
                                        pip_requirements=[f"{_distribution('xgboost')}=={xgboost.__version__}"])
    return info.model_uri


def _distribution(module: str) -> str:
    """The installed distribution providing ``module`` (``xgboost-cpu`` here, ``xgboost`` on a CUDA image), so a
    model's requirements name what was actually used."""
    return importlib.metadata.packages_distributions().get(module, [module])[0]


def write_model_outputs(folder: Path, results: dict[str, SchemeResult], summary: dict) -> None:
    """The model asset's own files: every protocol's metrics and test predictions, for the report."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "metrics.json") as tmp:
        tmp.write_text(json.dumps({
            **summary,
            "schemes": {
                s: {"validation": r.val_metrics, "test": r.test_metrics, "train_users": r.train_users,
                    "test_users": r.test_users, "seconds": r.seconds, "best_epoch": r.best_epoch,
                    "history": r.history, "thresholds": r.thresholds.to_dict() if r.thresholds else None}
                for s, r in results.items()
            },
        }, indent=2, default=float))
    frames = [r.predictions.assign(scheme=s) for s, r in results.items()]
    with atomic_path(folder / "test_predictions.parquet") as tmp:
        pd.concat(frames, ignore_index=True).to_parquet(tmp, index=False)
