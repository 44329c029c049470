"""Several ``churn-dagster materialize`` at once on one machine: each talks only to the webserver it started,
a launch that outlasts the client's patience is followed rather than failed (and never sent twice), and what
the GraphQL client raises becomes one line that says what failed, without the query."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import pytest
from local_servers import free_port

from churn_dagster.definitions import build_definitions
from churn_dagster.errors import RunFailed
from churn_dagster.runs import launch, servers
from churn_dagster.runs.runner import Step
from churn_dagster.settings import settings_from_env
from churn_dagster.synth.generator import generate

REPO = Path(__file__).resolve().parents[1]
LONG_LOG = {"CHURN_FIRST_DAY": "2018-06-01", "CHURN_LAST_DAY": "2019-11-28"}  # 546 days
LONGER_LOG = {"CHURN_FIRST_DAY": "2017-01-01", "CHURN_LAST_DAY": "2019-11-28"}  # 1,062 days, the first 516 empty
SNAPSHOTS = Step("raw_snapshots_job")
LOADED = {"workspaceOrError": {"locationEntries": [
    {"name": "churn_dagster", "loadStatus": "LOADED", "locationOrLoadError": {"__typename": "RepositoryLocation"}}]}}


class Decoy:
    """An HTTP server on 127.0.0.1 that answers every POST, at any path, with ``status`` and ``answer`` after
    ``delay`` seconds, and records the paths it was asked."""

    def __init__(self, answer: dict, status: int = 200, delay: float = 0.0, port: int = 0):
        self.paths: list[str] = []
        decoy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                decoy.paths.append(self.path)
                time.sleep(delay)
                body = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client stopped waiting
                    pass

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def home(tmp_path) -> Path:
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster_home")
    return tmp_path / "dagster_home"


def _refusal(typename: str, message) -> dict:
    key = "errors" if typename == "RunConfigValidationInvalid" else "message"
    return {"data": {"launchPipelineExecution": {"__typename": typename, key: message}}}


@pytest.mark.parametrize(("answer", "status", "line", "sent", "answered"), [
    (None, 200, "could not connect to the webserver", False, False),
    ({}, 200, "the webserver did not answer in time", True, False),  # answered after 2 s; the client waits 0.5 s
    ({}, 500, "the webserver answered with HTTP status 500", True, True),
    ({"errors": [{"message": "Cannot query field 'x' on type 'Query'."}]}, 200,
     "GraphQL error: Cannot query field 'x' on type 'Query'.", True, True),
    (_refusal("UnauthorizedError", "Launching runs is not allowed\nin read-only mode"), 200,
     "UnauthorizedError: Launching runs is not allowed", True, True),
    (_refusal("PythonError", "DagsterInvariantViolationError: no such asset\n  File x.py, line 3"), 200,
     "PythonError: DagsterInvariantViolationError: no such asset", True, True),
    (_refusal("RunConfigValidationInvalid", [{"message": "Missing required config entry \"ops\"\nat root"}]), 200,
     'RunConfigValidationInvalid: Missing required config entry "ops"', True, True),
])
def test_a_client_error_becomes_one_line_without_the_query(answer, status, line, sent, answered):
    from dagster_graphql import DagsterGraphQLClientError

    decoy = None if answer is None else Decoy(answer, status, delay=2.0 if answer == {} and status == 200 else 0)
    client = servers.graphql_client(free_port() if decoy is None else decoy.port, "", 2, 0.5)
    try:
        with pytest.raises(DagsterGraphQLClientError) as raised:
            client.submit_job_execution("raw_snapshots_job", "churn_dagster", "__repository__", run_config={})
    finally:
        if decoy is not None:
            decoy.close()
    assert launch.client_failure(raised.value) == (line, sent, answered)
    if sent and not answered:
        assert "mutation" in str(raised.value)  # what the client itself says: the whole query


def _dummy_server(tmp_path: Path, port: int) -> servers.Webserver:
    """A Webserver record of a port that some other server (or none) answers on, with a live process."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    return servers.Webserver(process, port, "", tmp_path / "servers.log")


def test_a_refused_launch_is_final_and_an_unreachable_server_is_retried(tmp_path):
    decoy = Decoy(_refusal("UnauthorizedError", "Launching runs is not allowed\nin read-only mode"))
    lines: list[str] = []
    with dg.DagsterInstance.ephemeral() as instance:
        server = _dummy_server(tmp_path, decoy.port)
        try:
            with pytest.raises(RunFailed) as refused:
                launch._submit(server, server.client(2, 5), instance, SNAPSHOTS, {}, "a1", lines.append, None)
            assert str(refused.value) == ("the code location refused raw_snapshots_job: UnauthorizedError: "
                                          "Launching runs is not allowed")
            assert len(decoy.paths) == 1  # sent once: the server answered, nothing to retry
            dead = servers.Webserver(server.process, free_port(), "", server.log_path)
            with pytest.raises(RunFailed) as unreachable:
                launch._submit(dead, dead.client(2, 5), instance, SNAPSHOTS, {}, "a2", lines.append, None)
        finally:
            decoy.close()
            server.process.kill()
    assert str(unreachable.value) == ("raw_snapshots_job was not launched: could not connect to the webserver, and "
                                      f"no run of launch a2 exists; see {server.log_path}")
    assert lines == ["  could not connect to the webserver; sending raw_snapshots_job again (attempt 2 of 3)",
                     "  could not connect to the webserver; sending raw_snapshots_job again (attempt 3 of 3)"]


def test_a_launch_without_an_answer_is_never_sent_twice(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "LAUNCH_WAIT_SECONDS", 1.0)
    decoy = Decoy({}, delay=3.0)  # takes the request and answers too late; creates no run
    lines: list[str] = []
    with dg.DagsterInstance.ephemeral() as instance:
        server = _dummy_server(tmp_path, decoy.port)
        try:
            with pytest.raises(RunFailed) as raised:
                launch._submit(server, server.client(2, 0.3), instance, SNAPSHOTS, {}, "b1", lines.append, None)
        finally:
            decoy.close()
            server.process.kill()
    assert decoy.paths == ["/graphql"]
    assert str(raised.value).startswith("raw_snapshots_job was not launched: the webserver did not answer in time, "
                                        "and no run of launch b1 exists")
    assert lines == ["  the webserver did not answer in time (it may still be launching the run); waiting for the run "
                     "of launch b1"]


def test_a_launch_that_outlasts_the_client_is_followed_to_its_end(home, tmp_path, monkeypatch):
    generate(tmp_path / "source", users=30, seed=1)
    monkeypatch.setenv("CHURN_SOURCE_DIR", str(tmp_path / "source"))
    monkeypatch.setattr(launch, "ANSWER_SECONDS", 0.01)  # every launch outlasts the client's patience
    monkeypatch.setattr(launch, "LAUNCH_WAIT_SECONDS", 300)
    steps = [SNAPSHOTS, Step("daily_ingest_job", "2019-11-01", "2019-11-30",
                             assets=frozenset({dg.AssetKey("raw_creator_stats")}))]
    lines: list[str] = []
    with dg.DagsterInstance.get() as instance:
        settings = settings_from_env()
        run_ids = launch.launch_steps(steps, instance, home, build_definitions(settings), settings, os.environ,
                                      echo=lines.append)
        runs = instance.get_runs()
        assert sorted(r.run_id for r in runs) == sorted(run_ids)  # one run per step: none sent twice
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
        assert len({r.tags[launch.LAUNCH_TAG] for r in runs}) == 2
    waiting = [line for line in lines if "did not answer in time (it may still be launching the run)" in line]
    assert len(waiting) == 2 and lines[-1] == f"  ok (run {run_ids[1]})"


@pytest.fixture
def decoy_webserver(tmp_path):
    """A dagster-webserver of the project's workspace, the same code location name, on a port of its own."""
    port, log = free_port(), tmp_path / "decoy.log"
    (tmp_path / "decoy_home").mkdir()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-webserver")), "-h", "127.0.0.1", "-p", str(port),
             "--uvicorn-log-level", "info", "-w", str(REPO / "workspace.yaml")], cwd=REPO, stdout=out,
            stderr=subprocess.STDOUT, env={**os.environ, "DAGSTER_HOME": str(tmp_path / "decoy_home")})
    deadline = time.monotonic() + 300
    while f"Uvicorn running on http://127.0.0.1:{port} " not in log.read_text() and time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-2000:]
        time.sleep(0.5)
    yield port, log
    process.terminate()
    process.wait(timeout=60)


@pytest.mark.parametrize("kind", ["decoy answering our queries", "another dagster-webserver"])
def test_a_port_taken_by_another_server_is_never_mistaken_for_ours(kind, request, home, monkeypatch):
    from dagster_graphql import DagsterGraphQLClientError

    if kind == "another dagster-webserver":
        taken, log = request.getfixturevalue("decoy_webserver")
        asked = lambda: re.findall(r'"POST [^"]*graphql', log.read_text())  # noqa: E731 - its access log
    else:
        decoy = Decoy({"data": {**LOADED, "launchPipelineExecution": {"__typename": "LaunchRunSuccess",
                                                                     "run": {"runId": "not-ours"}}}})
        request.addfinalizer(decoy.close)
        taken, asked = decoy.port, lambda: decoy.paths
    candidates = iter([taken])
    monkeypatch.setattr(servers, "_free_port", lambda: next(candidates, None) or free_port())
    lines: list[str] = []
    with servers.own_webserver(home, os.environ, echo=lines.append) as server:
        assert server.port != taken
        assert servers.location_state(server) == ""
        with pytest.raises(DagsterGraphQLClientError) as unknown:  # our server's answer, at our path prefix
            server.client(10, 60).get_run_status("no-such-run")
        assert launch.client_failure(unknown.value).line == "RunNotFoundError: Pipeline run no-such-run could not be found."
    assert asked() == []  # the server on the taken port never heard from us
    assert lines[1] == f"  port {taken} was taken meanwhile; trying another"
    assert lines[2].startswith(f"code location churn_dagster: webserver on 127.0.0.1:{server.port} ")


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """``long``: 8 users over the 546 days of :data:`LONG_LOG`; ``short``: 30 users over November 2019."""
    root = tmp_path_factory.mktemp("sources")
    generate(root / "long", users=8, days=546, start_date=date(2018, 6, 1), seed=3)
    generate(root / "short", users=30, seed=1)
    return root


def _materialize(home: Path, source: Path, select: str, **env: str) -> subprocess.Popen:
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return subprocess.Popen(
        [sys.executable, "-m", "churn_dagster.cli", "materialize", "--source", str(source), "--data-dir",
         str(home / "data"), "--data-only", "--select", select], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env, "DAGSTER_HOME": str(home), "CHURN_DUCKDB_MEMORY_LIMIT": "1GB"})


def test_three_commands_at_once_each_with_its_own_home_data_and_webserver(sources, tmp_path, monkeypatch):
    commands = {  # name: (source, --select, extra environment, job, partitions of raw_creator_stats)
        "long": ("long", "key:raw_creator_stats", LONG_LOG, "daily_ingest_job", 546),
        "short": ("short", "key:raw_creator_stats", {}, "daily_ingest_job", 30),
        "snapshots": ("short", "key:raw_user_demographics", {}, "raw_snapshots_job", 0),
    }
    processes = {}
    for name, (source, select, extra, _job, _days) in commands.items():
        (tmp_path / name).mkdir()
        processes[name] = _materialize(tmp_path / name, sources / source, select, **extra)
    outputs = {name: process.communicate(timeout=1200) for name, process in processes.items()}
    ports = set()
    for name, (_source, _select, _extra, job, days) in commands.items():
        stdout, stderr = outputs[name]
        assert processes[name].returncode == 0, stderr[-3000:]
        ports.add(re.search(r"webserver on 127\.0\.0\.1:(\d+) ", stdout).group(1))
        (printed,) = re.findall(r"  ok \(run ([0-9a-f-]+)\)", stdout)
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / name))
        with dg.DagsterInstance.get() as instance:
            (run,) = instance.get_runs()  # its own run, and only that, in its own instance
            assert (run.run_id, run.job_name, run.status) == (printed, job, dg.DagsterRunStatus.SUCCESS)
            assert launch.LAUNCH_TAG in run.tags
            assert len(instance.get_materialized_partitions(dg.AssetKey("raw_creator_stats"))) == days
        assert len(list((tmp_path / name / "data" / "raw").glob("creator_stats/day=*"))) == days
    assert len(ports) == 3


def test_ctrl_c_while_a_long_range_is_being_launched_cancels_its_run(sources, tmp_path, monkeypatch):
    """Launching 1,062 days of two assets records 2,124 planned materializations before the run starts; a
    Ctrl-C meanwhile waits for the run to start and terminates it, rather than leaving it to run on.

    The range starts 516 days before the source's first day (those days are ingested empty): at
    546 days the run once ended with SUCCESS before the terminate landed, after the ingest began closing its
    files two at a time. The run must outlast the launch by a wide margin for the test to watch the cancel."""
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    # The instance's SQLite storage is created here, before the command starts: two processes creating it at
    # once can leave its schema with two alembic heads.
    with dg.DagsterInstance.get() as instance:
        process = _materialize(tmp_path, sources / "long", "key:raw_creator_stats or key:raw_mlog_stats", **LONGER_LOG)
        deadline = time.monotonic() + 600
        while not instance.get_runs() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the webserver has created the run (and is recording its planned materializations)
        process.send_signal(signal.SIGINT)
        _stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 130, stderr[-3000:]
        (run,) = instance.get_runs()
        errors = [e.message for e in instance.all_logs(run.run_id) if e.level >= logging.ERROR]
        assert run.status == dg.DagsterRunStatus.CANCELED, errors
    assert stderr.splitlines()[-1] == (
        f"churn-dagster: stopped by SIGINT: run {run.run_id} of daily_ingest_job [2017-01-01 .. 2019-11-28] "
        "(raw_creator_stats, raw_mlog_stats) ended with status CANCELED; the steps after it were not started")
