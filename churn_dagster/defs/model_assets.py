"""Eight trained models: logistic regression, XGBoost, LSTM and hybrid LSTM, each for churn and for level.

Each asset trains under both protocols of :mod:`churn_dagster.ml.experiments` (one MLflow run each), logs
everything to MLflow, registers the random-split model and moves its ``champion`` alias only if it beats
the current champion on validation AUC. The asset's own files (metrics and test predictions) feed the
evaluation report. Training runs in the ``gpu`` pool, so only one runs at a time. This module holds only
the wiring; the work is in :mod:`model_training`, imported when a step runs.
"""

import os
from datetime import date

import dagster as dg
from pydantic import Field

from churn_dagster.calendar import parse_day
from churn_dagster.defs.mlflow_resource import MlflowResource, MlflowUnavailableError
from churn_dagster.defs.partitions import cohort_partitions
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


class TrainingCohorts(dg.Config):
    cohorts: list[str] = Field(
        default_factory=list,
        description="Cohort start days to train on (YYYY-MM-DD); empty means every labelled cohort.",
    )

    def days(self) -> list[date]:
        keys = self.cohorts or cohort_partitions.get_partition_keys()
        return sorted(parse_day(k) for k in keys)


class SequenceModelConfig(TrainingCohorts):
    """SPEC defaults; ``None`` takes the family's default (LSTM: 20 epochs, 1 layer; hybrid: 50, 2)."""

    epochs: int | None = None
    batch_size: int = 128
    learning_rate: float = 1e-3
    hidden_size: int = 128
    num_layers: int | None = None
    dropout: float = 0.2
    seed: int = 42


class ClassicalModelConfig(TrainingCohorts):
    C: float = Field(default=1.0, description="Inverse L2 penalty of the logistic regression.")
    n_estimators: int = Field(default=2000, description="XGBoost rounds before early stopping.")
    learning_rate: float = 0.05
    max_depth: int = 6
    early_stopping_rounds: int = 50
    seed: int = 42


def model_name(family: str, target: str) -> str:
    return f"{family}_{TARGET_SUFFIX[target]}"


def _spec(family: str, target: str, deps: list) -> dict:
    label, kind = FAMILIES[family]
    return dict(
        name=model_name(family, target),
        description=f"{label} for {'binary churn' if target == 'binary' else 'the 5-level engagement class'}, "
        "trained on the chosen cohorts under the random and the out-of-time split; MLflow runs linked below.",
        group_name="models",
        kinds={"python", kind, "mlflow"},
        owners=OWNERS,
        pool="gpu",
        deps=deps,
        check_specs=[dg.AssetCheckSpec("model_sane", asset=model_name(family, target),
                                       description="Finite weights, finite test AUCs above chance.")],
    )


def _retrying_transient_failures(context: dg.AssetExecutionContext, train, *args) -> dg.MaterializeResult:
    """``train(context, *args)``; an unreachable MLflow server (restarting, say) is retried twice, a minute
    and then two apart. Only that error: a ``dg.RetryPolicy`` would retry every exception, and Dagster counts
    an interruption as one, so Ctrl-C or SIGTERM would restart the training instead of stopping it."""
    try:
        return train(context, *args)
    except MlflowUnavailableError as exc:
        delay = RETRY_DELAY_SECONDS * (context.retry_number + 1)
        raise dg.RetryRequested(max_retries=MAX_RETRIES, seconds_to_wait=delay) from exc


def build_sequence_model(family: str, target: str) -> dg.AssetsDefinition:
    @dg.asset(**_spec(family, target, ["sequence_tensors"]))
    def _model(context: dg.AssetExecutionContext, config: SequenceModelConfig, lake: LakeResource, mlflow: MlflowResource):
        from churn_dagster.defs.model_training import train_sequence_model

        return _retrying_transient_failures(context, train_sequence_model, family, target, config, lake.lake, mlflow)

    return _model


def build_classical_model(family: str, target: str) -> dg.AssetsDefinition:
    @dg.asset(**_spec(family, target, ["kpi_features", "label_scores"]))
    def _model(context: dg.AssetExecutionContext, config: ClassicalModelConfig, lake: LakeResource, mlflow: MlflowResource):
        from churn_dagster.defs.model_training import train_classical_model

        return _retrying_transient_failures(context, train_classical_model, family, target, config, lake.lake, mlflow)

    return _model


model_assets = [
    (build_sequence_model if family in ("lstm", "hybrid_lstm") else build_classical_model)(family, target)
    for family in FAMILIES
    for target in ("binary", "level")
]
