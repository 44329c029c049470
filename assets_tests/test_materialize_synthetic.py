"""The whole data graph through Dagster on a small synthetic population: every day, every cohort, every
check green, and the outputs consistent with each other."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from conftest import resources_for

from churn_dagster.definitions import build_definitions
from churn_dagster.defs.partitions import CALENDAR
from churn_dagster.runs.runner import data_graph_steps, run_steps
from churn_dagster.synth.generator import generate


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic_graph")
    summary = generate(root / "source", users=4_000, seed=11)
    resources = resources_for(root / "source", root)
    with dg.DagsterInstance.ephemeral() as instance:
        run_ids = run_steps(build_definitions(resources), instance, data_graph_steps(CALENDAR), echo=lambda _: None)
        evaluations = [
            record.dagster_event.event_specific_data
            for run_id in run_ids
            for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
        ]
        materialized = {
            key.to_user_string(): instance.get_materialized_partitions(key) for key in build_definitions(resources)
            .resolve_asset_graph().get_all_asset_keys()
        }
    return root / "data", summary, evaluations, materialized


def test_every_check_passes(graph):
    _, _, evaluations, _ = graph
    failed = [(e.asset_key.to_user_string(), e.check_name, e.description) for e in evaluations if not e.passed]
    assert len(evaluations) >= 30 and failed == []


def test_every_partition_is_materialized(graph):
    _, _, _, materialized = graph
    assert len(materialized["raw_impressions"]) == 30
    assert len(materialized["user_day_activity"]) == 30
    for asset in ("cohort_users", "label_scores", "sessions", "kpi_features", "sequence_tensors"):
        assert len(materialized[asset]) == 10, asset


def test_all_impressions_are_loaded(graph):
    data, summary, _, _ = graph
    loaded = sum(len(pd.read_parquet(p)) for p in (data / "raw" / "impression_data").glob("day=*/data.parquet"))
    assert loaded == summary.rows["impression_data"]


def test_cohorts_labels_and_features_line_up(graph):
    data, _, _, _ = graph
    users = pd.read_parquet(data / "cohorts" / "cohort_users")
    scores = pd.read_parquet(data / "cohorts" / "label_scores")
    kpi = pd.read_parquet(data / "cohorts" / "kpi_features")
    assert users["user_id"].is_unique
    assert set(users["user_id"]) == set(scores["user_id"]) == set(kpi["user_id"])
    # The generator's dynamics: most new users do not come back in their label week, a few are Champions.
    assert 0.4 < scores["churned"].mean() < 0.85
    assert 0 < (scores["level"] == 4).mean() < 0.05
