"""What a churn model's training leaves behind besides the model: each protocol's metrics, plots, predictions
and level thresholds in its MLflow run, and the model asset's own files, which the evaluation report reads."""

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from churn_dagster.domain.engagement import LEVEL_NAMES
from churn_dagster.storage.duck import atomic_path
from churn_dagster.studies.churn.ml.experiments import SchemeResult
from churn_dagster.training.ml import plots
from churn_dagster.training.ml.metrics import flatten_metrics, headline_auc

CLASS_NAMES = {"binary": ["active", "churned"], "level": list(LEVEL_NAMES)}


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
