"""The case study's four classifiers as assets: a calibrated linear SVM, Gaussian naive Bayes, a decision tree
and an MLP, each trained with and without upsampling of the active training users.

Like the churn models: the ``gpu`` pool (every training asset is in it, so one trains at a time), a run config
generated from the hyperparameter dataclasses, one MLflow run per variant tagged with the Dagster run, each
variant registered under its own name (``case_study_svm``, ``case_study_svm_upsampled``, ...) with the champion
rule of :mod:`churn_dagster.training.registry` (the ``champion`` alias moves only after the blocking sanity
check passed, and only to a version that beats the champion on the same validation users), and a blocking
``model_sane`` check. This module is wiring only; the work is in :mod:`churn_dagster.studies.case_study.training`,
imported when a step runs so that loading the code location does not import scikit-learn or MLflow.
"""

import dataclasses

import dagster as dg

from churn_dagster.core.asset_attributes import model_asset
from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.core.resources import LakeResource
from churn_dagster.settings import Settings
from churn_dagster.studies.case_study.ml.hyperparameters import (
    MlpConfig,
    NaiveBayesConfig,
    SvmConfig,
    TreeConfig,
    UpsamplingConfig,
)
from churn_dagster.studies.case_study.names import FAMILY_LABELS, asset_name
from churn_dagster.training.config import config_class
from churn_dagster.training.retries import retrying_transient_failures

CODE_VERSION = "2"  # the registry's evidence rule; sanity on validation rows only
DEFAULTS = {"svm": SvmConfig(), "naive_bayes": NaiveBayesConfig(), "decision_tree": TreeConfig(), "mlp": MlpConfig()}
FAMILIES = list(FAMILY_LABELS)


CONFIG_CLASSES = {
    family: config_class("".join(p.title() for p in asset_name(family).split("_")) + "Config",
                         f"Hyperparameters of the case study's {FAMILY_LABELS[family]}, and its upsampling.",
                         DEFAULTS[family], UpsamplingConfig())
    for family in FAMILIES
}


def hyperparameters(family: str, config: dg.Config) -> tuple:
    """(the family's dataclass, UpsamplingConfig) with the values of a run's ``config``."""
    return tuple(dataclasses.replace(d, **{f.name: getattr(config, f.name) for f in dataclasses.fields(d)})
                 for d in (DEFAULTS[family], UpsamplingConfig()))


def build_case_study_model(settings: Settings, family: str) -> dg.AssetsDefinition:
    name = asset_name(family)

    @dg.asset(
        description=f"Case study (NCM 2021): {FAMILY_LABELS[family]} predicting whether a user's CTR over the target "
        "days will be above the training users' mean, from the feature days; trained without and with the active "
        "training users upsampled, one MLflow run each (linked below), each registered only on enough validation "
        "evidence above chance, then judged by the champion rule.",
        deps=["case_study_features", "case_study_labels"],
        **model_asset(name, "case_study", "scikit-learn", CODE_VERSION,
                      "Finite validation probabilities and parameters for both variants (the test split is never "
                      "judged); the champion alias moves only after it passed."),
    )
    def _model(context: dg.AssetExecutionContext, config: CONFIG_CLASSES[family], lake: LakeResource,
               mlflow: MlflowResource):
        from churn_dagster.studies.case_study import training  # scikit-learn and MLflow load when a step runs

        yield from retrying_transient_failures(context, settings.training_retry_delay_seconds,
                                                training.train_case_study_model, settings, family,
                                                hyperparameters(family, config), lake.lake, mlflow)

    return _model


def case_study_models(settings: Settings) -> list[dg.AssetsDefinition]:
    """One asset per family, each with its two variants."""
    return [build_case_study_model(settings, family) for family in FAMILIES]
