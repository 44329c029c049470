"""The webserver through which ``churn-dagster materialize`` launches its runs in the code location.

A run belongs to the code location only when it is created from it, as the UI creates it: through Dagster's
GraphQL API, against a workspace that loads ``churn_dagster`` as its code location. The CLI therefore starts
a ``dagster-webserver`` on a free loopback port for the length of the command. The runs go into the user's
instance, but the webserver reads a copy of its ``dagster.yaml`` that launches them at once
(``DefaultRunCoordinator``) instead of queueing them for a daemon: the command needs no daemon, executes its
own steps one at a time in its own environment, and none of them waits in the queue behind other runs.
Its console goes to ``$DAGSTER_HOME/logs/churn-dagster-servers.log``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import yaml

from churn_dagster.errors import UserError

LOCATION = "churn_dagster"
REPOSITORY = "__repository__"
WORKSPACE = f"""load_from:
  - python_module:
      module_name: churn_dagster.definitions
      location_name: {LOCATION}
      working_directory: {{cwd}}
"""
START_TIMEOUT_SECONDS = 180


class WebserverUnavailableError(UserError, RuntimeError):
    """The webserver the CLI started did not come up, or did not load the code location."""


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bin(name: str) -> str:
    """The console script ``name`` of this Python environment."""
    return str(Path(sys.executable).with_name(name))


def _pinned(value, home: Path):
    """``value`` with every ``{env: DAGSTER_HOME}`` replaced by ``home``: the copy lives in another folder."""
    if isinstance(value, dict):
        if value == {"env": "DAGSTER_HOME"}:
            return str(home)
        return {k: _pinned(v, home) for k, v in value.items()}
    if isinstance(value, list):
        return [_pinned(v, home) for v in value]
    return value


def launching_instance(home: Path) -> dict:
    """The instance configuration of ``home/dagster.yaml`` with runs launched at once rather than queued, and
    every place it stores anything pinned to ``home``: the same runs, event logs and compute logs."""
    config = _pinned(yaml.safe_load((home / "dagster.yaml").read_text()) or {}, home)
    config["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
    config.setdefault("storage", {"sqlite": {"base_dir": str(home)}})
    config.setdefault("local_artifact_storage", {
        "module": "dagster._core.storage.root", "class": "LocalArtifactStorage", "config": {"base_dir": str(home)}})
    config.setdefault("compute_logs", {
        "module": "dagster._core.storage.local_compute_log_manager", "class": "LocalComputeLogManager",
        "config": {"base_dir": str(home / "storage")}})
    config.get("concurrency", {}).pop("runs", None)  # queue limits; the command runs one run at a time
    return config


def _location_loaded(port: int) -> str | None:
    """None while the code location loads, ``""`` once loaded, else the load error."""
    query = ('{"query": "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus '
             'locationOrLoadError { __typename ... on PythonError { message } } } } } }"}')
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=query.encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            entries = json.loads(response.read())["data"]["workspaceOrError"]["locationEntries"]
    except (OSError, KeyError, TypeError, ValueError):
        return None
    entry = next((e for e in entries if e["name"] == LOCATION), None)
    if entry is None or entry["loadStatus"] != "LOADED":
        return None
    error = entry["locationOrLoadError"] or {}
    return error.get("message", "load failed") if error.get("__typename") == "PythonError" else ""


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def code_location_client(home: Path, echo=print) -> Iterator:
    """A GraphQL client of a webserver that launches runs into the instance of ``home``, for the length of the
    block (``dagster_graphql.DagsterGraphQLClient``)."""
    from dagster_graphql import DagsterGraphQLClient

    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "churn-dagster-servers.log"
    with tempfile.TemporaryDirectory(prefix="churn-dagster-") as folder, log_path.open("ab") as log:
        launcher_home = Path(folder)
        (launcher_home / "dagster.yaml").write_text(yaml.safe_dump(launching_instance(home)))
        workspace = launcher_home / "workspace.yaml"
        workspace.write_text(WORKSPACE.format(cwd=os.getcwd()))
        port = _free_port()
        process = subprocess.Popen(
            [_bin("dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", str(workspace)],
            env={**os.environ, "DAGSTER_HOME": str(launcher_home)}, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            echo(f"code location {LOCATION}: webserver on 127.0.0.1:{port} (its log: {log_path})")
            _wait_until_ready(port, process, log_path)
            yield DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=120)
        finally:
            _stop(process)


def _wait_until_ready(port: int, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise WebserverUnavailableError(
                f"dagster-webserver exited with status {process.returncode} as it started; see {log_path}")
        state = _location_loaded(port)
        if state == "":
            return
        if state:
            raise WebserverUnavailableError(f"the code location {LOCATION} did not load: {state.splitlines()[0]}")
        time.sleep(0.5)
    raise WebserverUnavailableError(f"the webserver did not load the code location within {START_TIMEOUT_SECONDS} s; "
                                  f"see {log_path}")
