"""The DIGMN trend subgraph through Dagster on a small synthetic population: session events for every cohort,
then per trend cohort the labels, the LDA intents fit on training users and the users' intent profiles, every
check green and the outputs consistent with each other."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
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


def test_the_trend_models_inputs_line_up_with_the_tables(trend_graph):
    from churn_dagster.ml.intents import IntentModel
    from churn_dagster.ml.trend_data import CONTEXT_FEATURES, load_trend_data
    from churn_dagster.transforms.lake import Lake
    from churn_dagster.transforms.session_events import EVENT_COLUMNS

    data, _, _, _ = trend_graph
    cohorts = [CALENDAR.day(dt) for dt in (1, 2, 3)]
    intents = IntentModel.from_dict(json.loads((data / "intents" / "cohort=2019-11-03" / "intents.json").read_text()))
    trend = load_trend_data(Lake(data), cohorts, intents, EVENT_COLUMNS, CALENDAR.observation_days)
    labels = pd.concat([pd.read_parquet(data / "cohorts" / "trend_labels" / f"cohort={c}" / "data.parquet")
                        for c in cohorts])
    kept = labels[labels["kept_by_filter"]]
    n = len(trend.users)
    assert n == len(kept) > 100 and trend.users["user_id"].is_unique
    assert set(trend.users["split"]) == {"train", "validation", "test"}
    assert trend.daily.shape == (n, CALENDAR.observation_days, len(EVENT_COLUMNS)) and len(trend.macro) == n
    sessions = pd.concat([pd.read_parquet(data / "cohorts" / "sessions" / f"cohort={c}" / "data.parquet") for c in cohorts])
    per_user = sessions.groupby("user_id").size()
    expected = per_user.reindex(trend.users["user_id"], fill_value=0).to_numpy()
    assert (np.diff(trend.offsets) == expected).all() and trend.offsets[-1] == len(trend.behaviour)
    assert trend.behaviour.shape[1] == len(EVENT_COLUMNS) + len(CONTEXT_FEATURES)
    assert trend.intents.shape == (len(trend.behaviour), intents.k)
    assert np.isfinite(trend.behaviour).all() and np.isfinite(trend.intents).all() and np.isfinite(trend.daily).all()
    row = int(np.argmax(np.diff(trend.offsets)))  # the user with the most sessions: frequencies sum to 1
    frequencies = trend.behaviour[trend.sessions_of(row), : len(EVENT_COLUMNS)]
    assert np.allclose(frequencies.sum(axis=1)[frequencies.sum(axis=1) > 0], 1.0, atol=1e-5)
    # the daily counts add up to the session counts of the observation window
    assert trend.daily[row].sum() == pytest.approx(
        pd.read_parquet(data / "cohorts" / "session_events").query("user_id == @trend.users.user_id[@row]")[
            list(EVENT_COLUMNS)].to_numpy().sum(), rel=0.01)


def test_batches_keep_the_latest_sessions_and_scale_on_training_rows_only(trend_graph):
    from churn_dagster.ml.intents import IntentModel
    from churn_dagster.ml.trend_data import MacroScaling, TrendBatches, load_trend_data
    from churn_dagster.transforms.lake import Lake
    from churn_dagster.transforms.session_events import EVENT_COLUMNS

    data, _, _, _ = trend_graph
    intents = IntentModel.from_dict(json.loads((data / "intents" / "cohort=2019-11-03" / "intents.json").read_text()))
    trend = load_trend_data(Lake(data), [CALENDAR.day(dt) for dt in (1, 2, 3)], intents, EVENT_COLUMNS,
                            CALENDAR.observation_days)
    train = trend.rows("train")
    scaling = MacroScaling.fit(trend.macro, train)
    scaled = scaling.transform(trend.macro)
    assert np.allclose(scaled[train].mean(axis=0), 0, atol=1e-4)  # centred on the training rows, not all
    test = TrendBatches(trend, "day", scaling, trend.rows("test"), max_sessions=3)
    busiest = int(np.argmax(np.diff(trend.offsets)[test.rows]))
    batch = test.batch(np.array([busiest, 0]))
    span = trend.sessions_of(int(test.rows[busiest]))
    assert batch["lengths"][0] == min(3, span.stop - span.start) and batch["behaviour"].shape[1] == batch["lengths"].max()
    assert np.allclose(batch["behaviour"][0, : batch["lengths"][0]].numpy(), trend.behaviour[span][-3:])  # the latest
    assert batch["y"].tolist() == trend.labels("day")[test.rows[[busiest, 0]]].tolist()
    assert sum(len(b["y"]) for b in test.batches(7)) == len(test)
