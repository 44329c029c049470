"""The DIGMN trend subgraph through Dagster on a small synthetic population: session events for every cohort,
then per trend cohort the labels, the LDA intents fit on training users and the users' intent profiles, every
check green and the outputs consistent with each other."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest
from conftest import resources_for

from churn_dagster.definitions import build_definitions
from churn_dagster.defs.partitions import CALENDAR, trend_partitions
from churn_dagster.runs.runner import data_graph_steps, run_steps
from churn_dagster.synth.generator import generate

SMALL_LDA = {"ops": {"intent_topics": {"config": {"k_max": 4, "max_iter": 5, "max_sessions": 5000}}}}


@pytest.fixture(scope="module")
def trend_graph(tmp_path_factory):
    root = tmp_path_factory.mktemp("trend_graph")
    generate(root / "source", users=3_000, seed=5)
    defs = build_definitions(resources_for(root / "source", root))
    with dg.DagsterInstance.ephemeral() as instance:
        run_steps(defs, instance, data_graph_steps(CALENDAR), echo=lambda _: None)
        results = [defs.resolve_job_def("trend_data_job").execute_in_process(
            instance=instance, partition_key=key, run_config=SMALL_LDA) for key in trend_partitions.get_partition_keys()]
        evaluations = [e for r in results for e in r.get_asset_check_evaluations()]
        materialized = {a: instance.get_materialized_partitions(dg.AssetKey(a))
                        for a in ("session_events", "user_day_events", "trend_labels", "intent_topics", "intent_profiles")}
    return root / "data", results, evaluations, materialized


def test_every_trend_cohort_is_built_and_every_check_passes(trend_graph):
    _, results, evaluations, materialized = trend_graph
    assert all(r.success for r in results)
    assert [(e.asset_key.to_user_string(), e.check_name) for e in evaluations if not e.passed] == []
    assert len(evaluations) == 3 * 4  # two label checks, one intent check, one profile check per trend cohort
    trend_keys = set(trend_partitions.get_partition_keys())
    assert trend_keys == {"2019-11-01", "2019-11-02", "2019-11-03"}
    for asset in ("trend_labels", "intent_topics", "intent_profiles"):
        assert materialized[asset] == trend_keys, asset
    assert len(materialized["session_events"]) == len(materialized["user_day_events"]) == 10


def test_labels_intents_and_profiles_line_up(trend_graph):
    data, _, _, _ = trend_graph
    cohort = "2019-11-02"
    users = pd.read_parquet(data / "cohorts" / "cohort_users" / f"cohort={cohort}" / "data.parquet")
    labels = pd.read_parquet(data / "cohorts" / "trend_labels" / f"cohort={cohort}" / "data.parquet")
    assert sorted(labels["user_id"]) == sorted(users["user_id"])
    assert set(labels["day_trend"]) <= {0, 1, 2} and set(labels["session_trend"]) <= {0, 1}
    model = json.loads((data / "intents" / f"cohort={cohort}" / "intents.json").read_text())
    assert 2 <= model["k"] <= 4 and set(model["perplexity"]) == {"2", "3", "4"}
    profile = pd.read_parquet(data / "cohorts" / "intent_profiles" / f"cohort={cohort}" / "data.parquet")
    shares = profile[[f"intent_{k}" for k in range(model["k"])]].sum(axis=1)
    with_sessions = profile["dominant_intent"] >= 0
    assert with_sessions.any() and ((shares[with_sessions] - 1).abs() < 1e-9).all()
    events = pd.read_parquet(data / "cohorts" / "session_events" / f"cohort={cohort}" / "data.parquet")
    assert set(profile["user_id"]) == set(events["user_id"])
