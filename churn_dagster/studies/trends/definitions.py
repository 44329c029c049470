"""The trend study's assets: labels, period-1 inputs, intents, the seven models for both tasks, the report."""

import dagster as dg

from churn_dagster.core.partitions import Partitions
from churn_dagster.studies.trends.events import trend_input_assets
from churn_dagster.studies.trends.intents import intent_assets
from churn_dagster.studies.trends.labels import trend_label_assets
from churn_dagster.studies.trends.models import trend_model_assets
from churn_dagster.studies.trends.partitions import TrendPartitions
from churn_dagster.studies.trends.report import trend_report_assets


def trend_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    t = TrendPartitions(p)
    return [*trend_label_assets(t), *trend_input_assets(t), *intent_assets(t), *trend_model_assets(t),
            *trend_report_assets(t)]
