"""The code location: every asset, check, job, sensor, schedule and resource of churn_dagster in one
``Definitions``, gathered from the shared stages (:mod:`churn_dagster.stages`), the four studies (:mod:`churn_dagster.studies`) and the automation, with the executor the deployment
chose for the jobs that do not pin their own (:mod:`churn_dagster.core.step_containers`)."""

import dagster as dg

from churn_dagster.automation import landing, retrain
from churn_dagster.core.resources import environment_resources
from churn_dagster.core.step_containers import step_executor
from churn_dagster.jobs import all_jobs
from churn_dagster.stages.cohorts.labels import label_targets
from churn_dagster.stages.cohorts.membership import cohort_users
from churn_dagster.stages.features.sessions import sessions
from churn_dagster.stages.features.user_features import kpi_features, static_features
from churn_dagster.stages.ingest.activity import user_day_activity
from churn_dagster.stages.ingest.raw import raw_assets
from churn_dagster.stages.tensors.sequences import sequence_tensors
from churn_dagster.studies.case_study import case_study_assets
from churn_dagster.studies.churn.models import model_assets
from churn_dagster.studies.churn.report import evaluation_report
from churn_dagster.studies.churn.risk_scores import churn_risk_scores
from churn_dagster.studies.churn.scoring_window import scoring_window
from churn_dagster.studies.continuation.examples import (
    continuation_examples,
    continuation_requests,
)
from churn_dagster.studies.continuation.models import continuation_models
from churn_dagster.studies.continuation.report import continuation_report
from churn_dagster.studies.trends.events import trend_period_inputs
from churn_dagster.studies.trends.intents import intent_profiles, intent_topics
from churn_dagster.studies.trends.labels import trend_labels
from churn_dagster.studies.trends.models import trend_model_assets
from churn_dagster.studies.trends.report import trend_report

ASSETS = [
    *raw_assets, user_day_activity,                             # ingest
    cohort_users, label_targets,                                # cohorts
    sessions, static_features, kpi_features,                    # features
    sequence_tensors,                                           # tensors
    *model_assets,                                              # models
    evaluation_report,                                          # report
    scoring_window, churn_risk_scores,                          # scoring
    trend_labels, trend_period_inputs, intent_topics, intent_profiles,  # trends (DIGMN)
    *trend_model_assets, trend_report,                          # trend models and their report
    *case_study_assets,                                         # the NCM case study (2021)
    continuation_requests, continuation_examples, *continuation_models, continuation_report,  # continuation
]


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    """The code location with ``resources`` (default: read from the environment)."""
    return dg.Definitions(
        assets=ASSETS,
        jobs=all_jobs,
        schedules=retrain.schedules,
        sensors=[*landing.sensors, *retrain.sensors],
        resources=resources or environment_resources(),
        executor=step_executor(),
    )


defs = build_definitions()
