"""Jobs over the data graph, one per partitioning, as the CLI and the schedules run them."""

from __future__ import annotations

import dagster as dg


raw_snapshots_job = dg.define_asset_job(
    "raw_snapshots_job",
    selection=dg.AssetSelection.assets("raw_user_demographics", "raw_mlog_demographics", "raw_creator_demographics"),
    description="Load the three snapshot tables (user, card and creator demographics).",
)
daily_ingest_job = dg.define_asset_job(
    "daily_ingest_job",
    selection=dg.AssetSelection.assets("raw_impressions", "raw_mlog_stats", "raw_creator_stats", "user_day_activity"),
    description="Load the daily files for a range of days and condense each day's activity.",
)
cohort_features_job = dg.define_asset_job(
    "cohort_features_job",
    selection=dg.AssetSelection.groups("cohorts", "labels", "features", "tensors"),
    description="Cohort membership, labels, features and tensors for a range of cohorts.",
)

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups("models", "reports", "scoring"),
    description="For a cohort partition: train the 8 models on its training window, write the evaluation report, "
    "score the newest window as of the day its label period ends.",
)

daily_retrain_job = dg.define_asset_job(
    "daily_retrain_job",
    selection=dg.AssetSelection.groups("cohorts", "labels", "features", "tensors", "models", "reports", "scoring"),
    description="One cohort partition (the one whose label period just completed): its data, then the models on its "
    "training window, the report and the risk scores of the newest window. Launched by retrain_after_ingest.",
)

data_jobs = [raw_snapshots_job, daily_ingest_job, cohort_features_job]
all_jobs = [*data_jobs, training_job, daily_retrain_job]
