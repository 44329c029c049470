"""Fourteen trend models: the DIGMN paper's seven models (its five baselines, DIGMN, and DIGMN's static
ablation), each for the day-level and the session-level task.

A trend partition X trains on the trend cohorts of its training window (the cohorts ``intent_topics`` of X
fit the intents on), with X's intents: the lineage shows sessions -> session events -> intents -> model. Each
asset trains its model once per seed (one MLflow run each), registers the seed with the best validation
headline and applies the champion rule (:mod:`churn_dagster.studies.trends.registry`). They share the ``gpu``
pool with the churn models, so one model trains at a time. This module holds only the wiring; the work is in
:mod:`churn_dagster.studies.trends.training`, imported when a step runs.
"""

import dagster as dg

from churn_dagster.core.asset_attributes import model_asset
from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.core.resources import LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.studies.trends.config import (
    CONFIG_CLASSES,
    MODEL_LABELS,
    TASK_LABELS,
    TREND_CODE_VERSION,
    TREND_TASKS,
    WINDOW_INPUTS,
    trend_model_name,
)
from churn_dagster.studies.trends.ml.hyperparameters import TREND_MODELS
from churn_dagster.studies.trends.partitions import TrendPartitions
from churn_dagster.training.retries import retrying_transient_failures


def build_trend_model_asset(t: TrendPartitions, model: str, task: str) -> dg.AssetsDefinition:
    name = trend_model_name(model, task)
    label, kind = MODEL_LABELS[model]
    config_class_ = CONFIG_CLASSES[model]

    @dg.asset(
        description=f"{label} for {TASK_LABELS[task]}, trained on the trend cohorts of the partition's training "
        "window once per seed (one MLflow run each; mean ± std below), the best-validation seed registered only on "
        "enough validation evidence above chance, and promoted to champion only if sane and better than the champion "
        "on the same validation users (each scored with its own topic model).",
        deps=[*(dg.AssetDep(a, partition_mapping=t.graph.training_window) for a in WINDOW_INPUTS), "intent_topics"],
        **model_asset(name, "trend_models", kind, TREND_CODE_VERSION,
                      "Every seed trained to finite weights, and the kept seed's validation probabilities finite "
                      "(the test split is never judged); the champion alias moves only after it passed.",
                      t.partitions,
                      (dg.AssetCheckSpec("beats_chance", asset=name,
                                         description="The kept seed's validation metric on enough users beats chance "
                                         "by the margin (AUROC 0.5, or macro F1 the mean share of the judged classes): "
                                         "the registry's evidence rule. A warning: a weak model still belongs in the "
                                         "report, but is not registered."),)),
    )
    def _trend_model(context: dg.AssetExecutionContext, config: config_class_, lake: LakeResource,
                     mlflow: MlflowResource):
        from churn_dagster.studies.trends import training  # torch, scikit-learn and MLflow load when a step runs

        yield from retrying_transient_failures(context, t.graph.settings.training_retry_delay_seconds,
                                               training.train_trend_asset, t, model, task,
                                               parse_day(context.partition_key), config, lake.lake, mlflow)

    return _trend_model


def trend_model_assets(t: TrendPartitions) -> list[dg.AssetsDefinition]:
    """The seven trend models for both tasks."""
    return [build_trend_model_asset(t, m, task) for m in TREND_MODELS for task in TREND_TASKS]
