"""The whole data graph through Dagster on a small synthetic population: every day, every cohort, every
check green, and the outputs consistent with each other."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from conftest import CALENDAR, resources_for

from churn_dagster.definitions import build_definitions
from churn_dagster.runs.runner import data_graph_steps, run_steps
from churn_dagster.synth.generator import generate

# asset -> (folder under the data directory, partition folder prefix) of the Parquet it writes per partition.
ROW_TABLES = {
    "raw_impressions": ("raw/impression_data", "day"), "user_day_activity": ("daily/user_day_activity", "day"),
    "cohort_users": ("cohorts/cohort_users", "cohort"), "user_splits": ("cohorts/user_splits", "cohort"),
    "label_scores": ("cohorts/label_scores", "cohort"), "sessions": ("cohorts/sessions", "cohort"),
    "window_impressions": ("cohorts/window_impressions", "cohort"),
    "static_features": ("cohorts/static_features", "cohort"), "kpi_features": ("cohorts/kpi_features", "cohort"),
}


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_graph")
    summary = generate(root / "source", users=4_000, seed=11)
    resources = resources_for(root / "source", root)
    with dg.DagsterInstance.ephemeral() as instance:
        run_ids = run_steps(build_definitions(resources=resources), instance, data_graph_steps(CALENDAR), echo=lambda _: None)
        evaluations = [
            record.dagster_event.event_specific_data
            for run_id in run_ids
            for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        ]
        keys = build_definitions(resources=resources).resolve_asset_graph().get_all_asset_keys()
        materialized = {key.to_user_string(): instance.get_materialized_partitions(key) for key in keys}
        row_counts = {  # what the UI shows as each partition's row count: its latest materialization's
            key.to_user_string(): {r.asset_materialization.partition: r.asset_materialization.metadata[
                "dagster/row_count"].value for r in reversed(instance.fetch_materializations(key, limit=1000).records)}
            for key in keys if key.to_user_string() in ROW_TABLES
        }
    return root / "data", summary, evaluations, materialized, row_counts


def test_every_check_passes(graph):
    _, _, evaluations, _, _ = graph
    failed = [(e.asset_key.to_user_string(), e.check_name, e.description) for e in evaluations if not e.passed]
    assert len(evaluations) >= 30 and failed == []


def test_every_partition_is_materialized(graph):
    _, _, _, materialized, _ = graph
    assert len(materialized["raw_impressions"]) == 30
    assert len(materialized["user_day_activity"]) == 30
    for asset in ("cohort_users", "label_scores", "sessions", "kpi_features", "sequence_tensors"):
        assert len(materialized[asset]) == 10, asset


def test_all_impressions_are_loaded(graph):
    data, summary, _, _, _ = graph
    loaded = sum(len(pd.read_parquet(p)) for p in (data / "raw" / "impression_data").glob("day=*/data.parquet"))
    assert loaded == summary.rows["impression_data"]


def test_cohorts_labels_and_features_line_up(graph):
    data, _, _, _, _ = graph
    users = pd.read_parquet(data / "cohorts" / "cohort_users")
    scores = pd.read_parquet(data / "cohorts" / "label_scores")
    kpi = pd.read_parquet(data / "cohorts" / "kpi_features")
    assert users["user_id"].is_unique
    assert set(users["user_id"]) == set(scores["user_id"]) == set(kpi["user_id"])
    # The generator's dynamics: most new users do not come back in their label week, a few are Champions.
    assert 0.4 < scores["churned"].mean() < 0.85
    assert 0 < (scores["level"] == 4).mean() < 0.05


def test_each_partition_shows_its_own_row_count(graph):
    """A single-run backfill writes 30 days or 10 cohorts at once; each partition's materialization still
    carries the rows of that partition's file, not the run's total."""
    data, _, _, _, row_counts = graph
    for asset, (folder, prefix) in ROW_TABLES.items():
        on_disk = {p.parent.name.removeprefix(f"{prefix}="): len(pd.read_parquet(p))
                   for p in (data / folder).glob(f"{prefix}=*/data.parquet")}
        assert row_counts[asset] == on_disk, asset
        assert len(set(on_disk.values())) > 1, asset  # partitions differ, so a run total could not pass
