"""The case study's assets: features and labels, four models in two variants, the report."""

import dagster as dg

from churn_dagster.core.partitions import Partitions
from churn_dagster.studies.case_study.data import data_assets
from churn_dagster.studies.case_study.models import case_study_models
from churn_dagster.studies.case_study.report import report_assets


def case_study_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """The case study's assets."""
    return [*data_assets(p), *case_study_models(p.settings), *report_assets(p)]
