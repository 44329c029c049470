"""Eight trained models: logistic regression, XGBoost, LSTM and hybrid LSTM, each for churn and for level.

Each model is partitioned by cohort: partition X trains on the labelled cohorts X-N+1 .. X (the training
window of ``partitions.py``), which is exactly what its lineage shows, under both protocols of
:mod:`churn_dagster.ml.experiments` (one MLflow run each). The random-split model is registered with its
metrics; the ``champion`` alias moves to it only after its blocking sanity check passed and only if it beats
the current champion on the same validation users (:mod:`churn_dagster.defs.champions`). Training runs in the
``gpu`` pool, so only one trains at a time. This module holds only the wiring; the work is in
:mod:`model_training`, imported when a step runs.
"""

import os
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from churn_dagster.calendar import parse_day
from churn_dagster.defs.mlflow_resource import MlflowResource, MlflowUnavailableError
from churn_dagster.defs.partitions import cohort_partitions, training_window
from churn_dagster.defs.raw_assets import OWNERS
from churn_dagster.defs.resources import LakeResource

TARGET_SUFFIX = {"binary": "churn", "level": "level"}
MAX_RETRIES = 2
RETRY_DELAY_SECONDS = float(os.environ.get("CHURN_TRAINING_RETRY_DELAY_SECONDS", "60"))
FAMILIES = {
    "logreg": ("Logistic regression", "scikit-learn"),
    "xgboost": ("XGBoost", "xgboost"),
    "lstm": ("LSTM", "pytorch"),
    "hybrid_lstm": ("Hybrid LSTM", "pytorch"),
}
MODEL_CODE_VERSION = "3"  # protocol thresholds and normalisation, same-row champion rule


class SequenceModelConfig(dg.Config):
    """SPEC defaults; ``None`` takes the family's default (LSTM: 20 epochs, 1 layer; hybrid: 50, 2)."""

    epochs: int | None = Field(default=None, ge=1, description="Training epochs (an upper bound for the hybrid).")
    batch_size: int = Field(default=128, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0)
    hidden_size: int = Field(default=128, ge=1)
    num_layers: int | None = Field(default=None, ge=1)
    dropout: float = Field(default=0.2, ge=0, lt=1)
    seed: int = 42


class ClassicalModelConfig(dg.Config):
    C: float = Field(default=1.0, gt=0, description="Inverse L2 penalty of the logistic regression.")
    n_estimators: int = Field(default=2000, ge=1, description="XGBoost rounds before early stopping.")
    learning_rate: float = Field(default=0.05, gt=0)
    max_depth: int = Field(default=6, ge=1)
    early_stopping_rounds: int = Field(default=50, ge=1)
    seed: int = 42


def model_name(family: str, target: str) -> str:
    return f"{family}_{TARGET_SUFFIX[target]}"


def _spec(family: str, target: str, deps: list[str]) -> dict:
    label, kind = FAMILIES[family]
    return dict(
        name=model_name(family, target),
        description=f"{label} for {'binary churn' if target == 'binary' else 'the 5-level engagement class'}, "
        "trained on the cohorts of its training window under the random and the out-of-time split; MLflow runs "
        "linked below. Promoted to champion only if sane and better than the champion on the same users.",
        group_name="models",
        kinds={"python", kind, "mlflow"},
        owners=OWNERS,
        pool="gpu",
        code_version=MODEL_CODE_VERSION,
        partitions_def=cohort_partitions,
        deps=[dg.AssetDep(d, partition_mapping=training_window) for d in deps],
        check_specs=[dg.AssetCheckSpec(
            "model_sane", asset=model_name(family, target), blocking=True,
            description="Finite weights, finite test AUCs above chance; the champion alias moves only after it passed.",
        )],
    )


def _retrying_transient_failures(context: dg.AssetExecutionContext, train, *args) -> Iterator:
    """``train(context, *args)``; an unreachable MLflow server (restarting, say) is retried twice, a minute
    and then two apart. Only that error: a ``dg.RetryPolicy`` would retry every exception, and Dagster counts
    an interruption as one, so Ctrl-C or SIGTERM would restart the training instead of stopping it."""
    try:
        yield from train(context, *args)
    except MlflowUnavailableError as exc:
        delay = RETRY_DELAY_SECONDS * (context.retry_number + 1)
        raise dg.RetryRequested(max_retries=MAX_RETRIES, seconds_to_wait=delay) from exc


def build_sequence_model(family: str, target: str) -> dg.AssetsDefinition:
    @dg.asset(**_spec(family, target, ["sequence_tensors"]))
    def _model(context: dg.AssetExecutionContext, config: SequenceModelConfig, lake: LakeResource, mlflow: MlflowResource):
        from churn_dagster.defs.model_training import train_sequence_model

        yield from _retrying_transient_failures(context, train_sequence_model, family, target,
                                                parse_day(context.partition_key), config, lake.lake, mlflow)

    return _model


def build_classical_model(family: str, target: str) -> dg.AssetsDefinition:
    @dg.asset(**_spec(family, target, ["kpi_features", "label_scores"]))
    def _model(context: dg.AssetExecutionContext, config: ClassicalModelConfig, lake: LakeResource, mlflow: MlflowResource):
        from churn_dagster.defs.model_training import train_classical_model

        yield from _retrying_transient_failures(context, train_classical_model, family, target,
                                                parse_day(context.partition_key), config, lake.lake, mlflow)

    return _model


model_assets = [
    (build_sequence_model if family in ("lstm", "hybrid_lstm") else build_classical_model)(family, target)
    for family in FAMILIES
    for target in ("binary", "level")
]
