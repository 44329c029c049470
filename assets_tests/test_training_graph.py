"""The whole graph with training on a small synthetic population: models, MLflow runs and registry, the
evaluation report and the risk scores."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from conftest import CALENDAR, resources_for
from mlflow import MlflowClient

from churn_dagster.core.partitions import Partitions
from churn_dagster.definitions import build_definitions
from churn_dagster.runs.runner import Step, run_steps, whole_graph_steps
from churn_dagster.settings import settings_from_env
from churn_dagster.studies.churn.config import FAMILIES, model_name
from churn_dagster.studies.continuation.config import epoch_cap_config as continuation_epoch_cap
from churn_dagster.synth.generator import generate
from churn_dagster.training.registry import champion_version

MODELS = [model_name(f, t) for f in FAMILIES for t in ("binary", "level")]
LAST = CALENDAR.last_labelled_cohort
EPOCHS = 3  # enough to learn the planted dynamics, small enough for CI


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("training_graph")
    generate(root / "source", users=6_000, seed=5)
    resources = resources_for(root / "source", root)
    mlflow = resources["mlflow"]
    config = {"ops": {m: {"config": {"epochs": EPOCHS}} for m in MODELS if "lstm" in m}}
    # The trend models and the case study have tests of their own (test_trend_graph.py,
    # test_case_study_graph.py); here the churn side of the graph and session continuation.
    steps = [s for s in whole_graph_steps(settings_from_env(), config, continuation_config=continuation_epoch_cap(EPOCHS))
             if not s.job.startswith("trend_") and s.job != "case_study_job"]
    with dg.DagsterInstance.ephemeral() as instance:
        run_ids = run_steps(build_definitions(resources=resources), instance, steps, echo=lambda _: None)
        checks = [r.dagster_event.event_specific_data for run_id in run_ids
                  for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
        # Then the scores of the previous window again, as a backfill would: the only models were trained on
        # labels that closed after that window did.
        earlier = (LAST - pd.Timedelta(days=1)).isoformat()
        (rescored,) = run_steps(build_definitions(resources=resources), instance, [Step(
            "training_job", earlier, earlier, assets=frozenset({dg.AssetKey("churn_risk_scores")}))], echo=lambda _: None)
        rescoring = [r.user_message for r in instance.all_logs(rescored)]
    return root / "data", mlflow, run_ids[[s.job for s in steps].index("training_job")], checks, rescoring


def test_every_check_passes(trained):
    _, _, _, checks, _ = trained
    failed = [(c.asset_key.to_user_string(), c.check_name, c.description) for c in checks if not c.passed]
    names = {c.asset_key.to_user_string() for c in checks}
    assert failed == [] and set(MODELS) <= names and {"churn_risk_scores", "scoring_window"} <= names


def test_mlflow_holds_every_training_run(trained):
    _, mlflow, training_run, _, _ = trained
    client = MlflowClient(mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(mlflow.experiment)
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    training = [r for r in runs if "split_scheme" in r.data.tags]
    assert len(training) == 2 * len(MODELS)
    for run in training:
        assert run.data.tags["dagster.run_id"] == training_run
        assert 0.5 < run.data.metrics["test_auc"] <= 1 and 0.5 < run.data.metrics["val_auc"] <= 1
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"roc.png", "confusion_matrix.png", "class_metrics.png", "test_predictions.parquet"} <= artifacts
        if "lstm" in run.data.tags["family"]:
            assert "learning_curves.png" in artifacts
            history = client.get_metric_history(run.info.run_id, "val_loss")
            assert 1 <= len(history) <= EPOCHS and all(np.isfinite(m.value) for m in history)
    for name in MODELS:
        assert champion_version(client, name) is not None, name


def test_report_compares_every_model_on_both_splits(trained):
    data, _, _, _, _ = trained
    folder = data / "reports" / "evaluation" / f"cohort={LAST.isoformat()}"
    for target, auc in (("binary", "ROC-AUC"), ("level", "OvR AUC (macro)")):
        table = pd.read_csv(folder / f"comparison_{target}.csv")
        assert len(table) == 8 and set(table["split"]) == {"random split", "out of time"}
        assert table[auc].between(0.5, 1).all()
        assert table[["accuracy", "precision (macro)", "recall (macro)", "F1 (macro)"]].notna().all().all()
    text = (folder / "report.md").read_text()
    assert "0.7821" in text and "reference" in text  # the study's hybrid-LSTM AUC, labelled as reference
    for figure in ("roc_binary_random.png", "roc_level_out_of_time.png", "shap_xgboost_churn.png",
                   "attention_hybrid_churn.png", "confusion_lstm_level.png"):
        assert (folder / figure).read_bytes()[:4] == b"\x89PNG", figure


def test_risk_scores_cover_the_latest_window(trained):
    data, _, _, _, _ = trained
    folder = data / "scores" / f"window={CALENDAR.last_day.isoformat()}"
    scores = pd.read_parquet(folder / "churn_risk_scores.parquet")
    window = pd.read_parquet(data / "scoring" / "cohort_users" / f"cohort={CALENDAR.last_observable_cohort.isoformat()}")
    assert sorted(scores["user_id"]) == sorted(window["user_id"])
    levels = scores.filter(like="p_").to_numpy()
    assert np.allclose(levels.sum(axis=1), 1, atol=1e-5)
    assert scores["churn_probability"].between(0, 1).all()
    assert (scores["predicted_level"] == levels.argmax(axis=1)).all()
    assert len(pd.read_csv(folder / "churn_risk_scores.csv")) == len(scores)


def test_models_train_on_their_window_with_thresholds_of_their_own_training_users(trained):
    data, _, _, _, _ = trained
    window = [c.isoformat() for c in Partitions(settings_from_env()).training_cohorts(LAST)]
    for name in MODELS:
        metrics = json.loads((data / "models" / name / f"cohort={LAST.isoformat()}" / "metrics.json").read_text())
        assert metrics["cohorts"] == window and set(metrics["schemes"]) == {"random", "out_of_time"}, name
    level = json.loads((data / "models" / "logreg_level" / f"cohort={LAST.isoformat()}" / "metrics.json").read_text())
    random, later = level["schemes"]["random"]["thresholds"], level["schemes"]["out_of_time"]["thresholds"]
    # Out of time the test cohort is not among the training users: fewer users, other thresholds.
    assert later["fitted_on_users"] < random["fitted_on_users"] and later != random
    same = json.loads((data / "models" / "lstm_level" / f"cohort={LAST.isoformat()}" / "metrics.json").read_text())
    assert same["schemes"]["out_of_time"]["thresholds"] == later  # every family fits them on the same users


def test_an_old_window_is_never_scored_with_a_model_trained_after_it(trained):
    """The models of partition 11-10 learned from labels that closed on 11-30. The window of partition 11-09 (users
    first seen on 11-16) closed on 11-29: re-materialised now, it finds no model it could have used then, says so
    in one line, and writes nothing."""
    data, _, _, _, rescoring = trained
    earlier = LAST - pd.Timedelta(days=1)
    closed = CALENDAR.observation_closed(earlier + pd.Timedelta(days=CALENDAR.label_days))
    assert closed.isoformat() == "2019-11-29"
    assert (f"nothing scored for the window closing {closed}: no churn and no level model was promoted from labels "
            "closed by then") in rescoring
    assert not (data / "scores" / f"window={closed.isoformat()}").exists()


def test_versions_record_their_evidence_protocols_and_label_dates(trained):
    """Out of time, partition 11-10 tests on cohort 11-10 (scored on 11-23) and trains on the cohorts whose labels
    had closed by then: 11-01 .. 11-03 (labels closed 11-21 .. 11-23). The registered version says when its own
    training labels closed (11-30) and why it was registered."""
    data, mlflow, _, _, _ = trained
    client = MlflowClient(mlflow.tracking_uri)
    for name in MODELS:
        metrics = json.loads((data / "models" / name / f"cohort={LAST.isoformat()}" / "metrics.json").read_text())
        assert metrics["protocol_cohorts"]["out_of_time"] == {
            "train": ["2019-11-01", "2019-11-02", "2019-11-03"], "test": ["2019-11-10"]}, name
        assert metrics["protocol_cohorts"]["random"]["test"] == [f"2019-11-{d:02d}" for d in range(4, 11)]
        version = client.get_model_version(name, metrics["registered_version"])
        assert json.loads(version.tags["labels_closed"]) == "2019-11-30"
        assert json.loads(version.tags["evidence"]).startswith("validation AUC ")
        run = client.get_run(version.run_id)
        assert run.data.tags["registry_decision"] == metrics["champion_decision"]
        assert metrics["champion_decision"].startswith(f"v{version.version}: ")


def test_a_training_step_resolves_each_tensor_folder_once(trained, monkeypatch):
    """Both protocols and the registry's comparison read one build of each cohort's tensors: a rebuild during
    training can swap the link but not mix two builds into one model."""
    from churn_dagster.stages.tensors.ml import data as ml_data

    data, _, _, _, _ = trained
    opened = []
    original = ml_data.CohortTensors.__init__

    def counting(self, folder):
        opened.append(Path(folder).name)
        original(self, folder)

    monkeypatch.setattr(ml_data.CohortTensors, "__init__", counting)
    defs = build_definitions(resources=resources_for(data.parent / "source", data.parent))
    result = defs.resolve_job_def("training_job").execute_in_process(
        partition_key=LAST.isoformat(), asset_selection=[dg.AssetKey("lstm_churn")],
        run_config={"ops": {"lstm_churn": {"config": {"epochs": 1}}}}, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    # 2019-11-10 trains on 11-04 .. 11-10 and, out of time, on 11-01 .. 11-03: ten folders, each opened once.
    assert sorted(opened) == [f"cohort=2019-11-{d:02d}" for d in range(1, 11)]
