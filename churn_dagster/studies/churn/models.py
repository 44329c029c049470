"""Eight trained models: logistic regression, XGBoost, LSTM and hybrid LSTM, each for churn and for level.

Each model is partitioned by cohort: partition X trains on the labelled cohorts X-N+1 .. X (the training
window of ``partitions.py``) under the random protocol, and tests out of time on X after training on the
cohorts whose labels had closed when X's observation window did (X-L-N+1 .. X-L), which is exactly what its
lineage shows (:mod:`churn_dagster.studies.churn.ml.experiments`, one MLflow run per protocol). The random-split model is
registered only when the evidence rule allows (enough validation positives and negatives, a finite
validation AUC above chance by the margin); the ``champion`` alias moves to it only after its blocking sanity
check passed and only if it beats the current champion on the same validation users
(:mod:`churn_dagster.training.registry`). Training runs in the ``gpu`` pool, so only one trains at a time.
This module holds only the wiring; the work is in :mod:`churn_dagster.studies.churn.training`, imported when a
step runs.
"""


import dagster as dg

from churn_dagster.core.asset_attributes import model_asset
from churn_dagster.core.constants import TARGETS
from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.studies.churn.config import (
    CONFIG_CLASSES,
    FAMILIES,
    MODEL_CODE_VERSION,
    SEQUENCE_FAMILIES,
    model_name,
)
from churn_dagster.training.retries import retrying_transient_failures


def _spec(p: Partitions, family: str, target: str, deps: list[str]) -> dict:
    label, kind = FAMILIES[family]
    return dict(
        description=f"{label} for {'binary churn' if target == 'binary' else 'the 5-level engagement class'}, "
        "trained on the cohorts of its training window under the random split, and out of time on the cohorts "
        "whose labels had closed when this cohort was scored; MLflow runs linked below. Registered only on enough "
        "validation evidence above chance; promoted to champion only if sane and better than the champion on the "
        "same users.",
        deps=[dg.AssetDep(d, partition_mapping=p.model_inputs_window) for d in deps],
        **model_asset(model_name(family, target), "models", kind, MODEL_CODE_VERSION,
                      "Finite weights and finite validation probabilities in [0, 1] under every protocol (the test "
                      "split is never judged); the champion alias moves only after it passed.",
                      p.cohort_partitions),
    )


def build_model_asset(p: Partitions, family: str, target: str) -> dg.AssetsDefinition:
    """The asset of one family and target: its run config is the family's generated config class."""
    sequence = family in SEQUENCE_FAMILIES
    config_class = CONFIG_CLASSES[family]

    @dg.asset(**_spec(p, family, target, ["sequence_tensors"] if sequence else ["kpi_features", "label_scores"]))
    def _model(context: dg.AssetExecutionContext, config: config_class, lake: LakeResource, mlflow: MlflowResource):
        from churn_dagster.studies.churn import (
            training,  # torch, scikit-learn and MLflow load when a step runs
        )

        train = training.train_sequence_model if sequence else training.train_classical_model
        yield from retrying_transient_failures(context, p.settings.training_retry_delay_seconds, train, p, family, target,
                                               parse_day(context.partition_key), config, lake.lake, mlflow)

    return _model


def model_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """The eight churn and level models."""
    return [build_model_asset(p, family, target) for family in FAMILIES for target in TARGETS]
