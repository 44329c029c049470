"""The CLI's runner on small Definitions and on the code location: the error an asset raised, unwrapped from
Dagster's chain; failed checks; ``--select`` and ``--max-epochs``; and a stop signal that ends the sequence."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dagster as dg
import pytest
from conftest import CALENDAR
from local_servers import free_port

from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import LakeResource
from churn_dagster.definitions import build_definitions
from churn_dagster.errors import RunFailed
from churn_dagster.interrupts import Interrupted
from churn_dagster.runs.runner import (
    Step,
    data_graph_steps,
    run_steps,
    select_steps,
    training_config,
    trend_training_config,
    whole_graph_steps,
)
from churn_dagster.settings import SettingsError, settings_from_env
from churn_dagster.stages.ingest.sql import BadInputError
from churn_dagster.studies.churn import models as model_assets

BAD_INPUT = "/data/impression_data.csv, line 7, column dt: expected a whole number from 1 to 30, got 'x1'"


@dg.asset
def reads_bad_input():
    try:
        Path("/nonexistent/impression_data.csv").read_text()
    except OSError as exc:
        raise BadInputError(BAD_INPUT) from exc


@dg.asset
def has_a_bug():
    return {}["missing"]


@dg.asset(check_specs=[dg.AssetCheckSpec("rows_accounted", asset="blocked", blocking=True)])
def blocked():
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(
        check_name="rows_accounted", passed=False, description="10 read = 9 loaded + 0 quarantined")])


@dg.asset(deps=[blocked])
def after_blocked():
    return None


@dg.asset(check_specs=[dg.AssetCheckSpec("quarantine_rate", asset="warned")])
def warned():
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(
        check_name="quarantine_rate", passed=False, severity=dg.AssetCheckSeverity.WARN, description="2% quarantined")])


@dg.asset
def stops_itself():
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)  # the signal lands here


@dg.asset(deps=[stops_itself])
def after_the_stop():
    return None


@dg.asset
def next_job_asset():
    return None


@dg.asset(op_tags={"dagster/priority": "1"})  # runs before its independent neighbour
def swallows_the_stop():
    """What DuckDB does with an interruption during a query: end the query with a plain error."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)
    except BaseException:
        raise RuntimeError("Query interrupted") from None


@dg.asset
def independent_of_it():
    return None

LAST = CALENDAR.last_labelled_cohort.isoformat()


ASSETS = [reads_bad_input, has_a_bug, blocked, after_blocked, warned, stops_itself, after_the_stop, next_job_asset,
          swallows_the_stop, independent_of_it]
SMALL = dg.Definitions(assets=ASSETS, jobs=[
    *(dg.define_asset_job(a.key.to_user_string(), selection=[a.key])
      for a in (reads_bad_input, has_a_bug, blocked, warned, next_job_asset)),
    dg.define_asset_job("blocked_then_downstream", selection=[blocked.key, after_blocked.key]),
    dg.define_asset_job("stop_then_downstream", selection=[stops_itself.key, after_the_stop.key]),
    dg.define_asset_job("swallow_then_independent", selection=[swallows_the_stop.key, independent_of_it.key]),
])


def _run(*jobs: str) -> tuple[list[str], dg.DagsterInstance]:
    instance = dg.DagsterInstance.ephemeral()
    echoed: list[str] = []
    try:
        run_steps(SMALL, instance, [Step(job) for job in jobs], echo=echoed.append)
    finally:
        instance.dispose()
    return echoed, instance


def test_a_user_error_inside_a_run_arrives_as_its_own_message():
    with pytest.raises(RunFailed) as raised:
        _run("reads_bad_input", "has_a_bug")
    assert raised.value.user_error
    assert str(raised.value).startswith(f"{BAD_INPUT} (in reads_bad_input, run ")
    assert "Traceback" not in str(raised.value) and "\n" not in str(raised.value)
    assert "FileNotFoundError" in raised.value.details  # the whole chain, for --verbose


def test_an_unforeseen_error_names_its_class_and_the_run():
    with pytest.raises(RunFailed) as raised:
        _run("has_a_bug")
    assert not raised.value.user_error
    assert str(raised.value).startswith("KeyError: 'missing' (in has_a_bug, run ")
    assert "test_runner.py" in raised.value.details


def test_a_failed_blocking_check_fails_the_step_by_name():
    with pytest.raises(RunFailed) as raised:
        _run("blocked_then_downstream", "warned")
    assert str(raised.value).startswith(
        "blocking check failed: blocked / rows_accounted: 10 read = 9 loaded + 0 quarantined (run ")


def test_a_failed_check_that_does_not_block_is_a_warning():
    echoed, _ = _run("warned")
    assert echoed[1] == "  warning: check failed: warned / quarantine_rate: 2% quarantined"
    assert echoed[2].startswith("  ok (run ")


def test_an_unreachable_mlflow_is_retried_then_named(tmp_path, monkeypatch):
    asset = model_assets.build_model_asset(Partitions(settings_from_env({"CHURN_TRAINING_RETRY_DELAY_SECONDS": "0.1"})), "logreg", "binary")
    port = free_port()
    dead = MlflowResource(tracking_uri=f"http://127.0.0.1:{port}")
    defs = dg.Definitions(assets=[asset], jobs=[dg.define_asset_job("train", selection=[asset.key])],
                          resources={"lake": LakeResource(data_dir=str(tmp_path)), "mlflow": dead})
    with dg.DagsterInstance.ephemeral() as instance, pytest.raises(RunFailed) as raised:
        last = CALENDAR.last_labelled_cohort.isoformat()
        run_steps(defs, instance, [Step("train", last, last)], echo=lambda _: None)
    assert raised.value.user_error  # wrapped twice: RetryRequested ("Exceeded max_retries of 2"), then the step
    assert str(raised.value).startswith(f"MLflow tracking server http://127.0.0.1:{port} is unreachable: ")
    assert "(in logreg_churn, run " in str(raised.value)


def test_a_stop_signal_fails_the_step_and_starts_nothing_more():
    handler_before = signal.getsignal(signal.SIGTERM)
    instance = dg.DagsterInstance.ephemeral()
    with pytest.raises(Interrupted) as raised:
        run_steps(SMALL, instance, [Step("stop_then_downstream"), Step("next_job_asset")], echo=lambda _: None)
    assert (raised.value.signum, raised.value.exit_code) == (signal.SIGTERM, 143)
    (run,) = instance.get_runs()  # the second job never started
    assert run.status == dg.DagsterRunStatus.FAILURE and run.tags["dagster/max_retries"] == "0"
    events = [r.dagster_event for r in instance.all_logs(run.run_id) if r.dagster_event]
    assert [e.step_key for e in events if e.event_type_value == "STEP_START"] == ["stops_itself"]
    (failure,) = [e for e in events if e.event_type_value == "STEP_FAILURE"]
    assert failure.event_specific_data.error.cls_name == "DagsterExecutionInterruptedError"
    assert not [e for e in events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert signal.getsignal(signal.SIGTERM) == handler_before  # put back as it was
    instance.dispose()


def test_a_stop_that_a_library_swallows_still_ends_the_run_before_its_next_step():
    with dg.DagsterInstance.ephemeral() as instance:
        with pytest.raises(Interrupted) as raised:
            run_steps(SMALL, instance, [Step("swallow_then_independent")], echo=lambda _: None)
        (run,) = instance.get_runs()
        starts = [r.step_key for r in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)]
    assert raised.value.signum == signal.SIGTERM and run.status == dg.DagsterRunStatus.FAILURE
    assert starts == ["swallows_the_stop"]


def test_a_stop_signal_before_a_run_is_created_starts_nothing():
    def stop_on_start(line: str) -> None:
        if line.startswith("running"):
            os.kill(os.getpid(), signal.SIGINT)

    with dg.DagsterInstance.ephemeral() as instance:
        with pytest.raises(Interrupted) as raised:
            run_steps(SMALL, instance, [Step("warned")], echo=stop_on_start)
        assert instance.get_runs() == []
    assert raised.value.exit_code == 130
    assert str(raised.value).startswith("stopped by SIGINT: run ") and "of warned was not created" in str(raised.value)


def test_select_keeps_the_order_and_the_partition_ranges():
    steps = whole_graph_steps(settings_from_env(), training_config(2))
    assert select_steps(build_definitions(), steps, "group:models and key:*_churn") == [
        Step("training_job", LAST, LAST, run_config=training_config(2), assets=frozenset(
            dg.AssetKey(f"{family}_churn") for family in ("logreg", "xgboost", "lstm", "hybrid_lstm")))]
    daily, cohorts = select_steps(build_definitions(), steps, "key:cohort_users or key:user_day_activity")
    assert (daily.job, daily.first, daily.last, daily.assets) == (
        "daily_ingest_job", "2019-11-01", "2019-11-30", {dg.AssetKey("user_day_activity")})
    assert (cohorts.job, cohorts.first, cohorts.last, cohorts.assets) == (
        "cohort_features_job", "2019-11-01", "2019-11-10", {dg.AssetKey("cohort_users")})


@pytest.mark.parametrize(("expression", "message"), [
    ("key:nothing_*", "--select 'key:nothing_*' selects no asset that these steps materialize"),
    ("group:models", "--select 'group:models' selects no asset that these steps materialize (raw_snapshots_job"),
    ("user_day_activity or cohort_users", ("--select 'user_day_activity or cohort_users': Invalid selection string: "
                                           "user_day_activity or cohort_users; combine asset keys as "
                                           "'key:lstm_churn or key:lstm_level'")),
    ("lstm_chrun", "--select 'lstm_chrun': AssetKey(s) ['lstm_chrun'] were selected, but no AssetsDefinition"),
])
def test_a_selection_of_nothing_is_a_settings_error(expression, message):
    with pytest.raises(SettingsError) as raised:
        select_steps(build_definitions(), data_graph_steps(CALENDAR), expression)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_the_whole_graph_ends_with_the_trend_data_and_models_of_the_last_trend_cohort():
    steps = whole_graph_steps(settings_from_env(), training_config(2), trend_training_config(2))
    assert [(s.job, s.first) for s in steps[-4:]] == [
        ("trend_data_job", "2019-11-01"), ("trend_data_job", "2019-11-02"), ("trend_data_job", "2019-11-03"),
        ("trend_training_job", "2019-11-03")]
    assert steps[-1].run_config == trend_training_config(2) and steps[3].job == "training_job"
    (trend,) = select_steps(build_definitions(), steps, "key:trend_digmn_*")
    assert (trend.job, trend.first, trend.assets) == ("trend_training_job", "2019-11-03", {
        dg.AssetKey(f"trend_{m}_{t}") for m in ("digmn", "digmn_static") for t in ("day", "session")})


def test_max_epochs_caps_the_trend_networks_too():
    config = trend_training_config(2)
    assert set(config["ops"]) == {f"trend_{m}_{t}" for m in ("activity_lstm", "multichannel", "digmn", "digmn_static")
                                  for t in ("day", "session")}
    assert all(op == {"config": {"epochs": 2}} for op in config["ops"].values())
    assert dg.validate_run_config(build_definitions().resolve_job_def("trend_training_job"), config)
    assert trend_training_config(None) is None


def test_max_epochs_is_valid_run_config_for_the_sequence_models():
    config = training_config(2)
    assert set(config["ops"]) == {"lstm_churn", "lstm_level", "hybrid_lstm_churn", "hybrid_lstm_level"}
    assert all(op == {"config": {"epochs": 2}} for op in config["ops"].values())
    assert dg.validate_run_config(build_definitions().resolve_job_def("training_job"), config)
    assert training_config(None) is None
