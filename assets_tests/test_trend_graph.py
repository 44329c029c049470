"""The DIGMN trend subgraph through Dagster on a small synthetic population: session events for every cohort,
then per trend cohort the labels, the LDA intents fit on training users and the users' intent profiles, every
check green and the outputs consistent with each other."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from conftest import CALENDAR, resources_for

from churn_dagster.core.partitions import Partitions
from churn_dagster.definitions import build_definitions
from churn_dagster.runs.runner import data_graph_steps, run_steps
from churn_dagster.settings import settings_from_env
from churn_dagster.studies.trends.partitions import TrendPartitions
from churn_dagster.synth.generator import generate

SMALL_LDA = {"ops": {"intent_topics": {"config": {"k_max": 4, "max_iter": 5, "max_sessions": 5000}}}}


@pytest.fixture(scope="module")
def trend_graph(tmp_path_factory):
    root = tmp_path_factory.mktemp("trend_graph")
    generate(root / "source", users=3_000, seed=5)
    defs = build_definitions(resources=resources_for(root / "source", root))
    with dg.DagsterInstance.ephemeral() as instance:
        run_steps(defs, instance, data_graph_steps(CALENDAR), echo=lambda _: None)
        results = [defs.resolve_job_def("trend_data_job").execute_in_process(
            instance=instance, partition_key=key, run_config=SMALL_LDA) for key in TrendPartitions(Partitions(settings_from_env())).partitions.get_partition_keys()]
        evaluations = [e for r in results for e in r.get_asset_check_evaluations()]
        materialized = {a: instance.get_materialized_partitions(dg.AssetKey(a))
                        for a in ("trend_sessions", "trend_macro_features", "session_events", "user_day_events",
                                  "trend_labels", "intent_topics", "intent_profiles")}
    return root / "data", results, evaluations, materialized


def test_every_trend_cohort_is_built_and_every_check_passes(trend_graph):
    _, results, evaluations, materialized = trend_graph
    assert all(r.success for r in results)
    assert [(e.asset_key.to_user_string(), e.check_name) for e in evaluations if not e.passed] == []
    assert len(evaluations) == 3 * 4  # two label checks, one intent check, one profile check per trend cohort
    trend_keys = set(TrendPartitions(Partitions(settings_from_env())).partitions.get_partition_keys())
    assert trend_keys == {"2019-11-01", "2019-11-02", "2019-11-03"}
    for asset in ("trend_labels", "intent_topics", "intent_profiles"):
        assert materialized[asset] == trend_keys, asset
    for asset in ("trend_sessions", "trend_macro_features", "session_events", "user_day_events"):
        assert len(materialized[asset]) == 10, asset  # every labelled cohort


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
    events = pd.read_parquet(data / "trend_inputs" / "session_events" / f"cohort={cohort}" / "data.parquet")
    assert set(profile["user_id"]) == set(events["user_id"])


def test_the_trend_models_inputs_line_up_with_the_tables(trend_graph):
    from churn_dagster.storage.lake import Lake
    from churn_dagster.studies.trends.ml.data import CONTEXT_FEATURES, load_trend_data
    from churn_dagster.studies.trends.ml.intents import IntentModel
    from churn_dagster.studies.trends.sql.session_events import EVENT_COLUMNS

    data, _, _, _ = trend_graph
    cohorts = [CALENDAR.day(dt) for dt in (1, 2, 3)]
    intents = IntentModel.from_dict(json.loads((data / "intents" / "cohort=2019-11-03" / "intents.json").read_text()))
    trend = load_trend_data(Lake(data), cohorts, intents, EVENT_COLUMNS, TrendPartitions(Partitions(settings_from_env())).windows.first_period_days)
    labels = pd.concat([pd.read_parquet(data / "cohorts" / "trend_labels" / f"cohort={c}" / "data.parquet")
                        for c in cohorts])
    kept = labels[labels["kept_by_filter"]]
    n = len(trend.users)
    assert n == len(kept) > 100 and trend.users["user_id"].is_unique
    assert set(trend.users["split"]) == {"train", "validation", "test"}
    assert trend.daily.shape == (n, TrendPartitions(Partitions(settings_from_env())).windows.first_period_days, len(EVENT_COLUMNS)) and len(trend.macro) == n
    sessions = pd.concat([pd.read_parquet(data / "trend_inputs" / "sessions" / f"cohort={c}" / "data.parquet")
                          for c in cohorts])
    per_user = sessions.groupby("user_id").size()
    expected = per_user.reindex(trend.users["user_id"], fill_value=0).to_numpy()
    assert (np.diff(trend.offsets) == expected).all() and trend.offsets[-1] == len(trend.behaviour)
    assert trend.behaviour.shape[1] == len(EVENT_COLUMNS) + len(CONTEXT_FEATURES)
    assert trend.intents.shape == (len(trend.behaviour), intents.k)
    assert np.isfinite(trend.behaviour).all() and np.isfinite(trend.intents).all() and np.isfinite(trend.daily).all()
    row = int(np.argmax(np.diff(trend.offsets)))  # the user with the most sessions: frequencies sum to 1
    frequencies = trend.behaviour[trend.sessions_of(row), : len(EVENT_COLUMNS)]
    assert np.allclose(frequencies.sum(axis=1)[frequencies.sum(axis=1) > 0], 1.0, atol=1e-5)
    # the daily counts add up to the session counts of the first trend period
    assert trend.daily[row].sum() == pytest.approx(
        pd.read_parquet(data / "trend_inputs" / "session_events").query("user_id == @trend.users.user_id[@row]")[
            list(EVENT_COLUMNS)].to_numpy().sum(), rel=0.01)


def test_batches_keep_the_latest_sessions_and_scale_on_training_rows_only(trend_graph):
    from churn_dagster.storage.lake import Lake
    from churn_dagster.studies.trends.ml.data import MacroScaling, TrendBatches, load_trend_data
    from churn_dagster.studies.trends.ml.intents import IntentModel
    from churn_dagster.studies.trends.sql.session_events import EVENT_COLUMNS

    data, _, _, _ = trend_graph
    intents = IntentModel.from_dict(json.loads((data / "intents" / "cohort=2019-11-03" / "intents.json").read_text()))
    trend = load_trend_data(Lake(data), [CALENDAR.day(dt) for dt in (1, 2, 3)], intents, EVENT_COLUMNS,
                            TrendPartitions(Partitions(settings_from_env())).windows.first_period_days)
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


# --- the trend models and their report ----------------------------------------------------------------------

SEEDS = [0, 1]
EPOCHS = 2
RETRAINED = ("trend_digmn_session", "trend_mlp_session", "trend_xgboost_session")  # one per MLflow flavor


def _small_training(names) -> dict:
    """Two seeds, the networks capped at EPOCHS, fewer boosting rounds: the whole subgraph in seconds."""
    from churn_dagster.studies.trends.config import trend_run_config

    capped = trend_run_config(EPOCHS, seeds=len(SEEDS))["ops"]
    return {"ops": {n: {"config": {**capped[n]["config"], **({"n_estimators": 100} if "xgboost" in n else {})}}
                    for n in names}}


@pytest.fixture(scope="module")
def trend_models(trend_graph):
    """The trend_training_job step of the whole graph for the last trend cohort, then three of its models
    retrained, which meets the champion each registered the first time."""
    import torch

    from churn_dagster.runs.runner import trend_steps
    from churn_dagster.studies.trends.config import TREND_MODEL_NAMES

    data, _, _, _ = trend_graph
    root = data.parent
    # 60 validation users: the evidence rule asks for 5 of each judged class here (30 by default) and no margin,
    # so that the registry's path is exercised; the rule itself is tested in test_evidence.py.
    resources = resources_for(root / "source", root, min_validation_users=5, promotion_margin=0.0)
    defs = build_definitions(resources=resources)
    step = trend_steps(settings_from_env(), _small_training(TREND_MODEL_NAMES))[-1]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            (run_id,) = run_steps(defs, instance, [step], echo=lambda _: None)
            again = defs.resolve_job_def("trend_training_job").execute_in_process(
                instance=instance, partition_key=step.first, run_config=_small_training(RETRAINED),
                asset_selection=[dg.AssetKey(n) for n in RETRAINED])
            checks = [e.dagster_event.event_specific_data
                      for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
            report = instance.get_latest_materialization_event(dg.AssetKey("trend_report")).asset_materialization
    finally:
        torch.set_num_threads(threads)
    return data, resources["mlflow"], step, run_id, again, checks, report


def test_the_trend_step_trains_every_model_of_the_last_trend_cohort(trend_models):
    from churn_dagster.studies.trends.config import TREND_MODEL_NAMES

    _, _, step, _, again, checks, report = trend_models
    assert (step.job, step.first, step.last) == ("trend_training_job", "2019-11-03", "2019-11-03")
    sane = {c.asset_key.to_user_string(): c.passed for c in checks if c.check_name == "model_sane"}
    assert sane == dict.fromkeys(TREND_MODEL_NAMES, True)
    assert {c.asset_key.to_user_string() for c in checks if c.check_name == "beats_chance"} == set(TREND_MODEL_NAMES)
    assert {c.asset_key.to_user_string(): c.passed for c in checks if c.check_name == "covers_every_model"} == {
        "trend_report": True}
    assert again.success and report.partition == "2019-11-03"


def test_one_mlflow_run_per_model_and_seed_and_the_best_seed_registered(trend_models):
    from mlflow import MlflowClient

    from churn_dagster.studies.trends.config import TREND_MODEL_NAMES
    from churn_dagster.training.registry import champion_version

    data, mlflow, _, run_id, _, _, _ = trend_models
    client = MlflowClient(mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(mlflow.experiment)
    runs = [r for r in client.search_runs([experiment.experiment_id], max_results=500)
            if "trend_model" in r.data.tags and r.data.tags["dagster.run_id"] == run_id]
    seeds = {}
    for run in runs:
        seeds.setdefault(run.data.tags["dagster.asset_key"], []).append(int(run.data.tags["seed"]))
        assert np.isfinite(run.data.metrics["val_headline"]) and np.isfinite(run.data.metrics["test_headline"])
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"metrics.json", "confusion_matrix.png"} <= artifacts
        if run.data.tags["trend_model"] not in ("logreg", "xgboost", "mlp"):
            history = client.get_metric_history(run.info.run_id, "val_loss")
            assert "learning_curves.png" in artifacts and 1 <= len(history) <= EPOCHS
    assert {k: sorted(v) for k, v in seeds.items()} == dict.fromkeys(TREND_MODEL_NAMES, SEEDS)
    registered = set()
    for name in TREND_MODEL_NAMES:
        summary = json.loads((data / "models" / name / "cohort=2019-11-03" / "summary.json").read_text())
        best_run = client.get_run(summary["mlflow_runs"][str(summary["best_seed"])].rsplit("/", 1)[-1])
        assert best_run.data.tags["registry_decision"] == summary["champion_decision"]
        if summary["registered_version"] is None:  # the evidence rule said no, and why
            assert summary["champion_decision"].startswith("not registered: validation ")
            assert client.search_model_versions(f"name = '{name}'") == [], name
            continue
        registered.add(name)
        first = client.get_model_version(name, "1")
        assert first.tags["model_sane"] == "true" and "is the first champion" in first.tags["champion_decision"]
        assert client.get_run(first.run_id).data.tags["dagster.run_id"] == run_id
        # summary.json is the latest training's: the retrain's version 2 for the models trained twice
        latest = client.get_model_version(name, "2" if name in RETRAINED else "1")
        assert latest.run_id == best_run.info.run_id and best_run.data.tags["seed"] == latest.tags["seed"]
        assert champion_version(client, name) is not None
    assert set(RETRAINED) <= registered


def test_a_retrained_model_meets_the_champion_on_the_same_validation_users(trend_models):
    """Retrained with the same seeds, a model is the champion again, weight for weight: loaded back from MLflow
    (with its macro scaling) the champion scores exactly what the challenger scored, so it stays (a tie does
    not promote)."""
    import re

    from mlflow import MlflowClient

    from churn_dagster.training.registry import champion_version

    _, mlflow, _, _, _, _, _ = trend_models
    client = MlflowClient(mlflow.tracking_uri)
    for name in RETRAINED:
        decision = client.get_model_version(name, "2").tags["champion_decision"]
        assert "does not beat the champion v1" in decision and re.search(r"on the same \d+ validation users", decision)
        challenger, champion = re.findall(r"(?:macro F1|AUC) (\d\.\d{4})", decision)
        assert challenger == champion, decision
        assert str(champion_version(client, name).version) == "1"


def test_the_report_sets_every_model_beside_the_paper(trend_models):
    data, _, _, _, _, _, report = trend_models
    folder = data / "reports" / "trends" / "cohort=2019-11-03"
    table = pd.read_csv(folder / "comparison.csv")
    assert len(table) == 7 and table.filter(like="(ours)").notna().all().all()
    assert table["seeds"].astype(str).eq("2").all()
    text = (folder / "report.md").read_text()
    assert "0.592 ± 0.001" in text and "0.655 ± 0.001" in text and "LinkedIn" in text  # DIGMN, Table 3
    assert "comparison" in report.metadata and "mlflow_run" in report.metadata
    summary = json.loads((data / "models" / "trend_digmn_day" / "cohort=2019-11-03" / "summary.json").read_text())
    assert summary["summary"]["seeds"] == 2 and summary["cohorts"] == ["2019-11-01", "2019-11-02", "2019-11-03"]
    seed = json.loads((data / "models" / "trend_digmn_day" / "cohort=2019-11-03" / "seed_1" / "metrics.json").read_text())
    assert seed["seed"] == 1 and len(seed["history"]) <= EPOCHS and "f1_macro" in seed["test"]


def test_trend_run_config_caps_the_networks_and_sets_the_seeds_of_every_model():
    from churn_dagster.studies.trends.config import trend_run_config

    assert trend_run_config() == {}
    ops = trend_run_config(3, seeds=2)["ops"]
    assert len(ops) == 14  # 7 models x 2 tasks
    assert ops["trend_digmn_day"] == {"config": {"epochs": 3, "seeds": [0, 1]}}
    assert ops["trend_xgboost_session"] == {"config": {"seeds": [0, 1]}}  # no epochs: not a network
    assert set(trend_run_config(3)["ops"]) == {f"trend_{m}_{t}" for m in ("activity_lstm", "multichannel", "digmn",
                                                                          "digmn_static") for t in ("day", "session")}
