"""The continuation group through Dagster on a small synthetic population: the data assets of the training
window's cohorts in the cohort data job, then continuation_job for the last labelled cohort, with MLflow runs,
registered models and the report."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import CALENDAR, resources_for
from mlflow import MlflowClient

from churn_dagster.core.partitions import Partitions
from churn_dagster.definitions import build_definitions
from churn_dagster.runs.runner import Step, run_steps
from churn_dagster.settings import settings_from_env
from churn_dagster.studies.continuation.config import FAMILIES, asset_name, epoch_cap_config, registered_name
from churn_dagster.studies.continuation.sql.examples import HORIZONS_MIN
from churn_dagster.synth.generator import generate
from churn_dagster.training.registry import champion_version

LAST = CALENDAR.last_labelled_cohort
DATA = ("raw_impressions", "user_day_activity")
COHORT_DATA = ("cohort_users", "user_splits", "label_scores", "window_impressions", "sessions", "continuation_requests",
               "continuation_examples")


def _keys(*names: str) -> frozenset[dg.AssetKey]:
    return frozenset(dg.AssetKey(n) for n in names)


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    root = tmp_path_factory.mktemp("continuation_graph")
    generate(root / "source", users=2_500, seed=3)
    resources = resources_for(root / "source", root)
    window = Partitions(settings_from_env()).training_cohorts(LAST)
    config = epoch_cap_config(2)
    config["ops"].update({asset_name("xgboost"): {"config": {"n_estimators": 100, "n_jobs": 1}}})
    steps = [
        Step("daily_ingest_job", CALENDAR.first_day.isoformat(), CALENDAR.last_day.isoformat(), assets=_keys(*DATA)),
        Step("cohort_features_job", window[0].isoformat(), LAST.isoformat(), assets=_keys(*COHORT_DATA)),
        Step("continuation_job", LAST.isoformat(), LAST.isoformat(), run_config=config),
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            run_ids = run_steps(build_definitions(resources=resources), instance, steps, echo=lambda _: None)
            checks = [r.dagster_event.event_specific_data for run_id in run_ids
                      for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
            report = instance.get_latest_materialization_event(dg.AssetKey("continuation_report"))
    finally:
        torch.set_num_threads(threads)
    return root / "data", resources["mlflow"], run_ids[-1], checks, report


def test_every_check_passes(materialized):
    _, _, _, checks, _ = materialized
    failed = [(c.asset_key.to_user_string(), c.check_name, c.description) for c in checks if not c.passed]
    names = {(c.asset_key.to_user_string(), c.check_name) for c in checks}
    assert failed == []
    assert {("continuation_examples", "features_use_only_the_past"), ("continuation_examples", "labels_monotone"),
            ("continuation_requests", "sessions_agree"), ("continuation_lstm", "model_sane"),
            ("continuation_report", "covers_every_model_and_horizon")} <= names


def test_one_mlflow_run_per_model_and_horizon(materialized):
    _, mlflow, run_id, _, _ = materialized
    client = MlflowClient(mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(mlflow.experiment)
    runs = [r for r in client.search_runs([experiment.experiment_id], max_results=100)
            if r.data.tags.get("task") == "continuation" and "horizon_min" in r.data.tags]
    assert sorted((r.data.tags["family"], r.data.tags["horizon_min"]) for r in runs) == sorted(
        (f, str(h)) for f in FAMILIES for h in HORIZONS_MIN)
    for run in runs:
        assert run.data.tags["dagster.run_id"] == run_id
        assert {"train_examples", "test_examples", "test_positives"} <= set(run.data.metrics)
        name = registered_name(run.data.tags["family"], int(run.data.tags["horizon_min"]))
        decision = run.data.tags["registry_decision"]
        versions = client.search_model_versions(f"name = '{name}'")
        if decision.startswith(("not registered", "not trained")):  # the evidence rule said no, and why
            assert versions == [] and champion_version(client, name) is None, decision
            assert any(why in decision for why in ("validation positives", "validation negatives",
                                                   "does not beat chance", "undefined", "not trained")), decision
        else:  # registered only on evidence; the first version of each model is champion
            (version,) = versions
            assert json.loads(version.tags["val_auc"]) > 0.52 and champion_version(client, name) is not None, name
            assert run.data.metrics["val_positives"] >= 30 and run.data.metrics["val_examples"] - run.data.metrics[
                "val_positives"] >= 30
        if "not_trained" in run.data.tags:
            continue
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "test_predictions.parquet" in artifacts
        if run.data.tags["family"] == "lstm":
            assert len(client.get_metric_history(run.info.run_id, "val_loss")) <= 2  # --max-epochs 2
    trained = [r for r in runs if "not_trained" not in r.data.tags]
    assert {r.data.tags["family"] for r in trained} == set(FAMILIES)  # the 10-minute horizon trains at least


def test_the_report_lists_every_model_and_horizon(materialized):
    data, _, _, _, report = materialized
    folder = data / "reports" / "continuation" / f"cohort={LAST.isoformat()}"
    table = pd.read_csv(folder / "auc.csv")
    assert len(table) == len(FAMILIES) * len(HORIZONS_MIN)
    trained = table[table["status"] == "trained"]
    assert trained["test ROC-AUC"].dropna().between(0, 1).all() and len(trained) >= len(FAMILIES)
    assert "no published figures" in (folder / "report.md").read_text()
    metadata = report.asset_materialization.metadata
    assert len(metadata["auc_by_model_and_horizon"].value.records) == len(table)
    metrics = json.loads((data / "models" / "continuation_lstm" / f"cohort={LAST.isoformat()}" / "metrics.json").read_text())
    assert metrics["cohorts"] == [c.isoformat() for c in Partitions(settings_from_env()).training_cohorts(LAST)]



def test_a_registered_lstm_scores_as_it_did_in_training(materialized):
    """The champion rule's path: the version loaded back from the registry, with its normalisation, scores the
    test examples rebuilt from the lake exactly as the trained network did."""
    from churn_dagster.storage.lake import Lake, read_cohort_tables
    from churn_dagster.studies.continuation.ml.data import Prefixes, labels
    from churn_dagster.studies.continuation.ml.models import PrefixRows
    from churn_dagster.training.registry import load_version, register_version

    data, mlflow, _, _, _ = materialized
    window, lake = Partitions(settings_from_env()).training_cohorts(LAST), Lake(data)
    folder = data / "models" / "continuation_lstm" / f"cohort={LAST.isoformat()}"
    metrics = json.loads((folder / "metrics.json").read_text())
    logged = pd.read_parquet(folder / "test_predictions.parquet").query("horizon_min == 10")
    examples = read_cohort_tables(lake, "continuation_examples", window)
    prefixes = Prefixes(read_cohort_tables(lake, "continuation_requests", window), examples, metrics["params"]["max_steps"])
    test = (examples["split"] == "test").to_numpy().nonzero()[0]
    # The model its MLflow run logged, registered here under a name of the test's own: on data this small the
    # registry's evidence rule keeps it out of the registry.
    run_id = metrics["horizons"]["10"]["mlflow_run"].rsplit("/", 1)[-1]
    client = MlflowClient(mlflow.tracking_uri)
    (logged_model,) = client.search_logged_models([mlflow.ensure_experiment()], f"source_run_id = '{run_id}'")
    version = register_version(mlflow, "test_lstm", run_id, f"models:/{logged_model.model_id}", {})
    registered = load_version(mlflow, "test_lstm", "lstm", version).candidate
    scored = PrefixRows(prefixes, test, labels(examples, 10)).proba(registered.model, registered.normalization)
    again = examples.iloc[test][["user_id", "request_ms"]].assign(p=scored)
    joined = logged.merge(again, on=["user_id", "request_ms"], suffixes=("_trained", "_loaded"), validate="one_to_one")
    assert len(joined) == len(logged) == len(test) > 0
    assert np.allclose(joined["p_trained"], joined["p_loaded"], atol=1e-6)
