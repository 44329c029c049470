"""The session-continuation models: logistic regression, XGBoost and an LSTM over the session's requests.

Like the churn models, partition X trains on the cohorts of its training window (``partitions.training_window``),
in the ``gpu`` pool, with its hyperparameters as run config generated from the dataclasses of ``ml/``. Each
asset trains one model per horizon (10, 20, 30 minutes), each in its own MLflow run, registered as
``continuation_<family>_<h>min``; the ``champion`` alias moves to a version only after the asset's blocking
sanity check passed and only if it beats the champion on the same validation examples. Only the wiring is
here; the work is in :mod:`churn_dagster.studies.continuation.training`, imported when a step runs.
"""

import dagster as dg

from churn_dagster.core.asset_attributes import model_asset
from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.studies.continuation.config import (
    CODE_VERSION,
    CONFIG_CLASSES,
    FAMILIES,
    asset_name,
    hyperparameters,
)
from churn_dagster.training.retries import retrying_transient_failures


def build_model_asset(p: Partitions, family: str) -> dg.AssetsDefinition:
    label, kind = FAMILIES[family]
    name = asset_name(family)
    inputs = ["continuation_examples", "continuation_requests"] if family == "lstm" else ["continuation_examples"]
    config_type = CONFIG_CLASSES[family]

    @dg.asset(
        description=f"{label} predicting, at a feed request, whether the session continues for at least 10, 20 and "
        "30 more minutes: one model per horizon, trained on the continuation examples of the training window split "
        "by user, each in its own MLflow run (links below), registered only on enough validation positives and "
        "negatives and a validation AUC above chance by the margin, and promoted to champion only if sane and "
        "better than the champion on the same validation examples.",
        deps=[dg.AssetDep(d, partition_mapping=p.training_window) for d in inputs],
        **model_asset(name, "continuation", kind, CODE_VERSION,
                      "Finite weights and finite validation probabilities at every trained horizon (the test split "
                      "is never judged); the champion aliases move only after it passed.", p.cohort_partitions),
    )
    def _model(context: dg.AssetExecutionContext, config: config_type, lake: LakeResource, mlflow: MlflowResource):
        from churn_dagster.studies.continuation import training  # torch, scikit-learn and MLflow load when a step runs

        yield from retrying_transient_failures(context, p.settings.training_retry_delay_seconds, training.train_family, p,
                                                family,
                                                parse_day(context.partition_key), hyperparameters(family, config),
                                                lake.lake, mlflow)

    return _model


def continuation_models(p: Partitions) -> list[dg.AssetsDefinition]:
    """One model asset per family, each with its three horizons."""
    return [build_model_asset(p, family) for family in FAMILIES]
