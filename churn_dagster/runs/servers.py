"""The servers through which ``churn-dagster materialize`` launches its runs in the code location.

A run belongs to the code location only when it is created from it, as the UI creates it: through Dagster's
GraphQL API, against a workspace that loads ``churn_dagster`` as its code location. The CLI therefore starts
a ``dagster-webserver`` on a free loopback port for the length of the command, and a ``dagster-daemon`` to
take the queued runs off the instance's queue and execute them, unless a healthy daemon already serves this
instance (``dagster dev``, a deployment), which then executes them: two daemons on one instance are not
supported. Both write their console to ``$DAGSTER_HOME/logs/churn-dagster-servers.log``.
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

import dagster as dg

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
QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"


class ServersUnavailableError(UserError, RuntimeError):
    """The webserver or the daemon the CLI started did not come up."""


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bin(name: str) -> str:
    """The console script ``name`` of this Python environment."""
    return str(Path(sys.executable).with_name(name))


def daemon_serves(instance: dg.DagsterInstance) -> bool:
    """Whether a daemon already takes runs off this instance's queue."""
    status = instance.get_daemon_statuses([QUEUE_DAEMON]).get(QUEUE_DAEMON)
    return bool(status and status.healthy)


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


class Servers:
    """The running webserver (and the daemon, when this command started one)."""

    def __init__(self, port: int, log: Path, started_daemon: bool):
        self.port = port
        self.log = log
        self.started_daemon = started_daemon

    def client(self):
        from dagster_graphql import DagsterGraphQLClient

        return DagsterGraphQLClient("127.0.0.1", port_number=self.port, timeout=120)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def code_location_servers(instance: dg.DagsterInstance, home: Path, echo=print) -> Iterator[Servers]:
    """The webserver, and a daemon unless one serves the instance, for the length of the block."""
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "churn-dagster-servers.log"
    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="churn-dagster-workspace-") as folder, log_path.open("ab") as log:
        workspace = Path(folder) / "workspace.yaml"
        workspace.write_text(WORKSPACE.format(cwd=os.getcwd()))
        port = _free_port()
        started_daemon = not daemon_serves(instance)
        try:
            processes.append(subprocess.Popen(
                [_bin("dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", str(workspace)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))
            if started_daemon:
                processes.append(subprocess.Popen(
                    [_bin("dagster-daemon"), "run", "-w", str(workspace)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True))
            echo(f"code location {LOCATION}: webserver on 127.0.0.1:{port}, "
                 + ("daemon started" if started_daemon else "runs executed by the daemon already serving "
                    f"DAGSTER_HOME={home}") + f" (their log: {log_path})")
            _wait_until_ready(port, processes, log_path)
            yield Servers(port, log_path, started_daemon)
        finally:
            for process in reversed(processes):
                _stop(process)


def _wait_until_ready(port: int, processes: list[subprocess.Popen], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise ServersUnavailableError(
                    f"{Path(process.args[0]).name} exited with status {process.returncode} as it started; "
                    f"see {log_path}")
        state = _location_loaded(port)
        if state == "":
            return
        if state:
            raise ServersUnavailableError(f"the code location {LOCATION} did not load: {state.splitlines()[0]}")
        time.sleep(0.5)
    raise ServersUnavailableError(f"the webserver did not load the code location within {START_TIMEOUT_SECONDS} s; "
                                  f"see {log_path}")
