"""Jobs over the data graph, one per partitioning, as the CLI, the sensors and the schedule run them.

The data jobs execute their steps one after the other in the run's own process (``in_process_executor``):
each step is DuckDB SQL that already uses every core it is given, so running two at once only splits the
cores, while a process per step (the default executor) pays Python's and Dagster's start-up once per step
and asset (about 2 s each, a third of a small cohort range's run). Training jobs keep the default
executor: their steps wait for the ``gpu`` pool, and the report and scoring steps can run beside them. A
deployment with a container per step (:mod:`churn_dagster.core.step_containers`) runs the data jobs' steps in
containers too.
"""

from __future__ import annotations

import dagster as dg

from churn_dagster.core.step_containers import step_executor
from churn_dagster.settings import Settings

SNAPSHOT_ASSETS = ("raw_user_demographics", "raw_mlog_demographics", "raw_creator_demographics")
DAILY_ASSETS = ("raw_impressions", "raw_mlog_stats", "raw_creator_stats", "user_day_activity")
# Everything partitioned by cohort up to the tensors: what a cohort's label period makes ready (the period-1
# inputs of the trend stage are per cohort too).
cohort_data_selection = dg.AssetSelection.groups("cohorts", "labels", "features", "tensors") | dg.AssetSelection.assets(
    "trend_sessions", "trend_macro_features", "session_events", "user_day_events", "continuation_requests",
    "continuation_examples")
TREND_DATA_ASSETS = ("trend_labels", "intent_topics", "intent_profiles")
# The trend models and their report, partitioned by trend cohort (a job's assets share one partitioning).
trend_training_selection = dg.AssetSelection.groups("trend_models") | dg.AssetSelection.assets("trend_report")

def build_jobs(settings: Settings) -> dict[str, dg.UnresolvedAssetJobDefinition]:
    """Every job, by name; the data jobs on the executor the settings choose."""
    data_executor = step_executor(settings) or dg.in_process_executor

    raw_snapshots_job = dg.define_asset_job(
        "raw_snapshots_job",
        executor_def=data_executor,
        selection=dg.AssetSelection.assets(*SNAPSHOT_ASSETS),
        description="Load the three snapshot tables (user, card and creator demographics).",
    )
    daily_ingest_job = dg.define_asset_job(
        "daily_ingest_job",
        executor_def=data_executor,
        selection=dg.AssetSelection.assets(*DAILY_ASSETS),
        description="Load the daily files for a range of days and condense each day's activity.",
    )
    cohort_features_job = dg.define_asset_job(
        "cohort_features_job",
        executor_def=data_executor,
        selection=cohort_data_selection,
        description="Cohort membership, labels, features and tensors for a range of cohorts.",
    )
    trend_data_job = dg.define_asset_job(
        "trend_data_job",
        executor_def=data_executor,
        selection=dg.AssetSelection.assets(*TREND_DATA_ASSETS),
        description="For the cohorts whose two trend periods fit in the data: the DIGMN trend labels, the LDA intents "
        "fit on the training users' sessions, and each user's intent profile.",
    )
    trend_training_job = dg.define_asset_job(
        "trend_training_job",
        selection=trend_training_selection,
        description="For a trend partition: the DIGMN paper's seven models (five baselines, DIGMN and its static "
        "ablation) for the day- and session-level tasks, each with several seeds, and the trend report beside the "
        "paper's results.",
    )
    training_job = dg.define_asset_job(
        "training_job",
        selection=dg.AssetSelection.groups("models", "reports", "scoring") - trend_training_selection,
        description="For a cohort partition: train the 8 models on its training window, write the evaluation report, "
        "score the newest window as of the day its label period ends.",
    )

    case_study_job = dg.define_asset_job(
        "case_study_job",
        selection=dg.AssetSelection.groups("case_study"),
        description="The NCM case study (2021): features of the first days, the CTR target, four models with and "
        "without upsampling of the actives, and the report beside the case study's figures.",
    )

    continuation_job = dg.define_asset_job(
        "continuation_job",
        selection=dg.AssetSelection.groups("continuation") - dg.AssetSelection.assets(
            "continuation_requests", "continuation_examples"),  # per cohort, with the cohort data
        description="For a cohort partition: the session-continuation models (10/20/30 minutes) on its training window "
        "and their report.",
    )

    data_jobs = [raw_snapshots_job, daily_ingest_job, cohort_features_job]
    all_jobs = [*data_jobs, trend_data_job, trend_training_job, training_job, continuation_job, case_study_job]

    return {job.name: job for job in all_jobs}
