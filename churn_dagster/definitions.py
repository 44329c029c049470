"""The code location: every asset, job and resource of churn_dagster in one ``Definitions``."""

import dagster as dg

from churn_dagster.defs.automation import schedules, sensors
from churn_dagster.defs.cohort_assets import cohort_users, label_targets, user_day_activity
from churn_dagster.defs.feature_assets import kpi_features, sessions, static_features
from churn_dagster.defs.jobs import all_jobs
from churn_dagster.defs.model_assets import model_assets
from churn_dagster.defs.report_assets import evaluation_report
from churn_dagster.defs.scoring_assets import churn_risk_scores, scoring_window
from churn_dagster.defs.raw_assets import raw_assets
from churn_dagster.defs.resources import resources_from_env
from churn_dagster.defs.tensor_assets import sequence_tensors

ASSETS = [*raw_assets, user_day_activity, cohort_users, label_targets, sessions, static_features, kpi_features,
          sequence_tensors, *model_assets, evaluation_report, scoring_window, churn_risk_scores]


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    """The code location with ``resources`` (default: configured from the environment)."""
    return dg.Definitions(
        assets=ASSETS, jobs=all_jobs, schedules=schedules, sensors=sensors, resources=resources or resources_from_env()
    )


defs = build_definitions()
