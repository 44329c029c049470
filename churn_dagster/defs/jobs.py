"""Jobs over the data graph, one per partitioning, as the CLI, the sensors and the schedule run them."""

from __future__ import annotations

import dagster as dg

SNAPSHOT_ASSETS = ("raw_user_demographics", "raw_mlog_demographics", "raw_creator_demographics")
DAILY_ASSETS = ("raw_impressions", "raw_mlog_stats", "raw_creator_stats", "user_day_activity")
# Everything partitioned by cohort up to the tensors: what a cohort's label period makes ready.
cohort_data_selection = dg.AssetSelection.groups("cohorts", "labels", "features", "tensors")

raw_snapshots_job = dg.define_asset_job(
    "raw_snapshots_job",
    selection=dg.AssetSelection.assets(*SNAPSHOT_ASSETS),
    description="Load the three snapshot tables (user, card and creator demographics).",
)
daily_ingest_job = dg.define_asset_job(
    "daily_ingest_job",
    selection=dg.AssetSelection.assets(*DAILY_ASSETS),
    description="Load the daily files for a range of days and condense each day's activity.",
)
cohort_features_job = dg.define_asset_job(
    "cohort_features_job",
    selection=cohort_data_selection,
    description="Cohort membership, labels, features and tensors for a range of cohorts.",
)
training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups("models", "reports", "scoring"),
    description="For a cohort partition: train the 8 models on its training window, write the evaluation report, "
    "score the newest window as of the day its label period ends.",
)

data_jobs = [raw_snapshots_job, daily_ingest_job, cohort_features_job]
all_jobs = [*data_jobs, training_job]
