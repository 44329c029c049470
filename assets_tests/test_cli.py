"""``churn-dagster`` as a user runs it: one line for what went wrong and the exit status, ``--verbose`` for the
traceback, ``--select`` and ``--max-epochs``, and Ctrl-C / SIGTERM stopping a training run for good."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from conftest import CALENDAR, resources_for

from churn_dagster import cli
from churn_dagster.definitions import build_definitions
from churn_dagster.runs.runner import data_graph_steps, run_steps
from churn_dagster.synth.generator import generate

REPO = Path(__file__).resolve().parents[1]
LAST = CALENDAR.last_labelled_cohort.isoformat()
RUN_ID = r"[0-9a-f]{8}-[0-9a-f-]{27}"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """300 synthetic users and their data graph (through the tensors), in ``root/source`` and ``root/data``."""
    root = tmp_path_factory.mktemp("cli")
    generate(root / "source", users=300, seed=2)
    with dg.DagsterInstance.ephemeral() as instance:
        run_steps(build_definitions(resources=resources_for(root / "source", root)), instance, data_graph_steps(CALENDAR),
                  echo=lambda _: None)
    return root


@pytest.fixture
def home(tmp_path) -> Path:
    """The test's DAGSTER_HOME (see conftest) with the project's dagster.yaml, run retries included."""
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster_home")
    return tmp_path / "dagster_home"


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "DAGSTER_HOME": str(home), "CHURN_DUCKDB_MEMORY_LIMIT": "1GB", **extra}


def churn_dagster(home: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "churn_dagster.cli", *args], cwd=REPO, env=_env(home, **extra_env),
                          capture_output=True, text=True, timeout=300, check=False)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("churn-dagster")]


@pytest.mark.parametrize(("argv", "message"), [
    (["generate", "--out", "x", "--users", "0"], "argument --users: expected a whole number, at least 1; got '0'"),
    (["land", "--source", ".", "--landing", "x", "--days", "2019-11-21:2019-11-01"],
     "argument --days: expected FIRST:LAST, two ISO dates in order"),
    (["materialize", "--source", "no/such/folder"], "argument --source: no such folder: no/such/folder"),
    (["materialize", "--source", ".", "--max-epochs", "zero"],
     "argument --max-epochs: expected a whole number, at least 1"),
    (["materialize", "--source", ".", "--trend-seeds", "6"],
     "argument --trend-seeds: expected a whole number from 1 to 5; got '6'"),
    (["generate-events", "--shape", "purchases", "--out", "x.csv", "--rate", "0"],
     "argument --rate: expected a number above 0 and below 100; got '0'"),
    (["generate-events", "--shape", "orders", "--out", "x.csv"], "argument --shape: invalid choice: 'orders'"),
])
def test_bad_arguments_are_one_line_and_status_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and len(err.splitlines()) == 1 and message in err


def test_generate_events_writes_a_log_of_the_shape_asked_for(tmp_path, capsys):
    out = tmp_path / "ratings.csv"
    cli.main(["generate-events", "--shape", "ratings", "--out", str(out), "--users", "40", "--days", "30"])
    rows = out.read_text().splitlines()
    assert rows[0] == '"userId","movieId","rating","timestamp"'
    assert capsys.readouterr().out.startswith(f"wrote {out}: {len(rows) - 1:,} events of 40 users over 30 days")


@pytest.mark.parametrize(("env", "argv", "message"), [
    ({"CHURN_SESSION_GAP_MINUTES": "2000"}, [],
     "CHURN_SESSION_GAP_MINUTES='2000' is not allowed: expected a number of minutes above 0 and at most 1440"),
    ({"CHURN_LAST_DAY": "2019-11-15"}, [],
     ("CHURN_OBSERVATION_DAYS + CHURN_LABEL_DAYS (14 + 7) must fit in the 15 days from CHURN_FIRST_DAY (2019-11-01) "
      "to CHURN_LAST_DAY (2019-11-15)")),
    ({}, ["--data-only", "--max-epochs", "2"], "--max-epochs shapes the training, which --data-only leaves out"),
    ({}, ["--data-only", "--trend-seeds", "1"], "--trend-seeds shapes the training, which --data-only leaves out"),
])
def test_bad_settings_are_one_line_and_nothing_runs(env, argv, message, tmp_path, monkeypatch, capsys):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        cli.main(["materialize", "--source", str(tmp_path), *argv])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"churn-dagster: error: {message}"]
    assert not (tmp_path / "dagster_home" / "storage").exists()


@pytest.mark.parametrize("verbose", [False, True])
def test_an_unforeseen_error_is_a_summary_or_with_verbose_the_traceback(verbose, tmp_path, capsys):
    landing = tmp_path / "a_file"
    landing.write_text("")
    with pytest.raises(SystemExit) as exited:
        cli.main([*(["--verbose"] if verbose else []), "land", "--source", str(tmp_path), "--landing", str(landing),
                  "--days", "2019-11-01:2019-11-01"])
    err = capsys.readouterr().err
    assert exited.value.code == 1
    assert err.splitlines()[-1] == f"churn-dagster: error: FileExistsError: [Errno 17] File exists: '{landing}'" + (
        "" if verbose else "; --verbose shows the traceback")
    assert ("Traceback (most recent call last)" in err) is verbose


@pytest.mark.parametrize("verbose", [False, True])
def test_bad_input_names_file_line_and_column(verbose, prepared, tmp_path, home):
    source = tmp_path / "source"
    shutil.copytree(prepared / "source", source)
    header, body = (source / "user_demographics.csv").read_text().split("\n", 1)
    (source / "user_demographics.csv").write_text(header.replace("gender", "sex") + "\n" + body)
    done = churn_dagster(home, *(["--verbose"] if verbose else []), "materialize", "--source", str(source),
                         "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 1
    last = done.stderr.splitlines()[-1]
    # the file, the line, the column found and the one expected (the wording is the header check's)
    assert last.startswith(f"churn-dagster: error: {source}/user_demographics.csv, line 1: ")
    assert "'sex'" in last and "gender" in last
    assert re.search(rf" \(in raw_user_demographics, run {RUN_ID}\)$", last)
    assert ("Stack Trace" in done.stderr and "header.py" in done.stderr) is verbose
    if not verbose:
        assert error_lines(done.stderr) == [last] and "Traceback" not in done.stderr and "ERROR" not in done.stderr
    assert "running daily_ingest_job" not in done.stdout  # the sequence stopped at the snapshots


def test_an_unforeseen_error_in_a_run_names_the_step_and_run(prepared, tmp_path, home):
    shutil.copytree(prepared / "data" / "raw", tmp_path / "data" / "raw")
    (tmp_path / "data" / "raw" / "impression_data" / "day=2019-11-05" / "data.parquet").write_bytes(b"not parquet")
    done = churn_dagster(home, "materialize", "--source", str(prepared / "source"), "--data-dir",
                         str(tmp_path / "data"), "--select", "user_day_activity")
    assert done.returncode == 1
    (line,) = error_lines(done.stderr)
    assert re.fullmatch(
        rf"churn-dagster: error: \w+: .+ \(in user_day_activity, run {RUN_ID}\); --verbose shows the traceback", line)


def test_select_runs_only_those_assets_and_failed_checks_warn(prepared, tmp_path, home):
    source = tmp_path / "source"
    shutil.copytree(prepared / "source", source)
    with (source / "creator_stats.csv").open("a", newline="") as out:  # 10 rows with a field too many: > 1%
        out.write('"GARBAGE",1,2,3\r\n' * 10)
    done = churn_dagster(home, "materialize", "--source", str(source), "--data-dir", str(tmp_path / "data"),
                         "--select", "raw_creator_stats")
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if not re.match(r"\d\d:\d\d:\d\d INFO ", line)]
    assert re.fullmatch(r"code location churn_dagster: webserver on 127\.0\.0\.1:\d+ "
                        r"\(its log: .*/logs/churn-dagster-servers\.log\)", lines[0])
    assert lines[1] == "running daily_ingest_job [2019-11-01 .. 2019-11-30] (raw_creator_stats) ..."
    assert lines[2].startswith("  warning: check failed: raw_creator_stats / quarantine_rate: 2.6")
    assert lines[3].startswith("  ok (run ") and lines[4] == ""
    assert re.search(r"\d\d:\d\d:\d\d INFO creator_stats: read \d+, loaded", done.stdout)  # the asset's own log
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        materialized = {r.dagster_event.asset_key.to_user_string()
                        for r in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)}
        assert materialized == {"raw_creator_stats"}
        assert len(instance.get_materialized_partitions(dg.AssetKey("raw_creator_stats"))) == 30
    # The run belongs to the code location as a UI-launched run does: its job lists it, and its job snapshot
    # is the one the code location serves, so the UI re-executes it without a version warning.
    job = _graphql(home, '{ pipelineOrError(params: {repositoryLocationName: "churn_dagster", repositoryName: '
                   '"__repository__", pipelineName: "daily_ingest_job"}) { ... on Pipeline { pipelineSnapshotId '
                   'runs { runId pipelineSnapshotId parentPipelineSnapshotId repositoryOrigin '
                   '{ repositoryLocationName } } } } }', CHURN_SOURCE_DIR=str(source.resolve()),
                   CHURN_DATA_DIR=str((tmp_path / "data").resolve()))["pipelineOrError"]
    (listed,) = job["runs"]
    assert listed["runId"] == run.run_id and listed["repositoryOrigin"]["repositoryLocationName"] == "churn_dagster"
    assert (listed["parentPipelineSnapshotId"] or listed["pipelineSnapshotId"]) == job["pipelineSnapshotId"]


def test_a_dagster_home_of_dagster_defaults_runs_and_a_missing_one_is_one_line(prepared, tmp_path):
    """A DAGSTER_HOME without a dagster.yaml is Dagster's defaults, as for ``dagster dev``: the command runs in
    it; a DAGSTER_HOME that is not a folder is named with what to do before anything starts."""
    bare = tmp_path / "bare_home"
    bare.mkdir()
    done = churn_dagster(bare, "materialize", "--source", str(prepared / "source"), "--data-dir",
                         str(tmp_path / "data"), "--select", "raw_creator_stats")
    assert done.returncode == 0, done.stderr
    assert (bare / "history" / "runs.db").exists() and not (bare / "dagster.yaml").exists()
    missing = tmp_path / "no_such_home"
    done = churn_dagster(missing, "materialize", "--source", str(prepared / "source"), "--data-dir",
                         str(tmp_path / "data"))
    assert done.returncode == 2 and error_lines(done.stderr) == [
        f"churn-dagster: error: DAGSTER_HOME={missing} is not a folder; create it (mkdir -p {missing}) or point "
        "DAGSTER_HOME at the project folder, which holds its dagster.yaml"]
    assert not missing.exists()


def _graphql(home: Path, query: str, **env: str) -> dict:
    """``query`` answered by the code location as ``dagster dev`` loads it (workspace.yaml), in DAGSTER_HOME."""
    done = subprocess.run([str(Path(sys.executable).with_name("dagster-graphql")), "-w", str(REPO / "workspace.yaml"),
                           "-t", query], cwd=REPO, env=_env(home, **env), capture_output=True, text=True, timeout=180,
                          check=True)
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))["data"]


def _wait_for_step(instance: dg.DagsterInstance, process: subprocess.Popen, step: str) -> dg.DagsterRun:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        for run in instance.get_runs():
            if any(r.step_key == step for r in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)):
                return run
        time.sleep(0.2)
    raise AssertionError(f"{step} did not start")


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_ends_training_for_good(signum, status, prepared, tmp_path, home):
    """Before, the training assets' RetryPolicy took the interruption for a failure to retry: the next attempt
    started training again, 100,000 epochs of it, and only SIGKILL ended the process."""
    env = _env(home, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    args = ["materialize", "--source", str(prepared / "source"), "--data-dir", str(prepared / "data"),
            "--select", "key:lstm_churn or key:lstm_level", "--max-epochs", "100000"]
    process = subprocess.Popen([sys.executable, "-m", "churn_dagster.cli", *args], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with dg.DagsterInstance.get() as instance:
        run = _wait_for_step(instance, process, "lstm_churn")
        process.send_signal(signum)
        try:
            _, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
        assert process.returncode == status
        assert error_lines(stderr) == [(
            f"churn-dagster: stopped by {signal.Signals(signum).name}: run {run.run_id} of training_job "
            f"[{LAST} .. {LAST}] (lstm_churn, lstm_level) ended with status CANCELED; the steps after it were not started")]
        (run,) = instance.get_runs()
        # Terminated as the UI's Terminate button does: canceled, and never retried.
        assert run.status == dg.DagsterRunStatus.CANCELED and run.tags.get("dagster/will_retry") != "true"
        assert run.run_config["ops"]["lstm_churn"]["config"]["epochs"] == 100_000  # --max-epochs
        events = [r.dagster_event for r in instance.all_logs(run.run_id) if r.dagster_event]
        assert not [e for e in events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        assert [e.step_key for e in events if e.event_type_value == "STEP_START"] == ["lstm_churn"]
    assert not (prepared / "data" / "models" / "lstm_churn").exists()
