"""The continuation study's assets: requests and examples per cohort, three model families, the report."""

import dagster as dg

from churn_dagster.core.partitions import Partitions
from churn_dagster.studies.continuation.examples import example_assets
from churn_dagster.studies.continuation.models import continuation_models
from churn_dagster.studies.continuation.report import report_assets


def continuation_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    return [*example_assets(p), *continuation_models(p), *report_assets(p)]
