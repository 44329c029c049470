"""What every study's training run leaves in MLflow: params, per-epoch curves with a progress line, and the
model in its flavor (a PyTorch network with its normalisation, a scikit-learn Pipeline or an XGBoost
classifier). A study's own metrics, plots and files are logged by the study."""

import importlib.metadata
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import sklearn
import torch
import xgboost
from mlflow.models import infer_signature

from churn_dagster.training.ml.metrics import headline_auc


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


def log_torch_model(result, sample_batch) -> str:
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


def log_sklearn_like_model(result, X_sample, flavor: str,
                           trusted_types: tuple[str, ...] = ("numpy.dtype",)) -> str:
    """A logistic-regression Pipeline (sklearn flavor) or an XGBoost classifier (xgboost flavor).
    ``trusted_types``: what skops may load besides scikit-learn's own estimators (an MLP adds its optimizer)."""
    # Integer columns declared as doubles: a count may be missing for a user at scoring time, and MLflow warns
    # (to the user, who cannot act on it) that an integer column cannot hold a missing value.
    X_sample = X_sample.astype({c: "float64" for c, t in X_sample.dtypes.items() if t.kind in "iu"})
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
