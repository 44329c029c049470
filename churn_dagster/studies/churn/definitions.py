"""The churn study's assets: eight models, the evaluation report, the scoring window and the risk scores."""

import dagster as dg

from churn_dagster.core.partitions import Partitions
from churn_dagster.studies.churn.models import model_assets
from churn_dagster.studies.churn.report import report_assets
from churn_dagster.studies.churn.risk_scores import risk_score_assets
from churn_dagster.studies.churn.scoring_window import scoring_window_assets


def churn_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    return [*model_assets(p), *report_assets(p), *scoring_window_assets(p), *risk_score_assets(p)]
