"""The webserver through which ``churn-dagster materialize`` launches its runs in the code location.

A run belongs to the code location only when it is created from it, as the UI creates it: through Dagster's
GraphQL API, against a workspace that loads ``churn_dagster`` as its code location. The CLI therefore starts
a ``dagster-webserver`` on a loopback port for the length of the command. The runs go into the user's
instance, but the webserver reads a copy of its ``dagster.yaml`` that launches them at once
(``DefaultRunCoordinator``) instead of queueing them for a daemon: the command needs no daemon, executes its
own steps one at a time in its own environment, and none of them waits in the queue behind other runs.
Its console goes to ``$DAGSTER_HOME/logs/churn-dagster-servers.log``.

Several commands may run at once on one machine, so the command must only ever talk to the webserver it
started. A port can only be chosen before the webserver binds it (``dagster-webserver -p 0`` means port
3000), and in that moment another process may take it; a webserver of another command answers the same
queries about a location of the same name. So the command proves that the server on the port is its own:
uvicorn prints ``Uvicorn running on http://127.0.0.1:PORT`` once it has bound the socket, and the command
reads that line from its own child's console, not from a shared file. From then on, while that child lives,
no other process can listen on 127.0.0.1:PORT. A webserver that finds the port taken exits saying so, and
the command starts it again on another port. Every URL also carries a random ``--path-prefix``, which only
this webserver serves: should it die, a process that took the port over answers 404, not a run.
Requests bypass any HTTP proxy of the environment, which would otherwise carry them elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
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
START_TIMEOUT_SECONDS = 600  # three webservers loading the code location at once on two busy cores take minutes
PORT_ATTEMPTS = 5
LISTENING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+) ")
PORT_TAKEN = b"address already in use"
NO_PROXIES = {"http": None, "https": None}


class WebserverUnavailableError(UserError, RuntimeError):
    """The webserver the CLI started did not come up, or did not load the code location."""


def _free_port() -> int:
    """A port free a moment ago: a candidate, which the webserver may yet find taken."""
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
    source = home / "dagster.yaml"  # optional, as in Dagster: without it every setting is Dagster's default
    config = _pinned((yaml.safe_load(source.read_text()) if source.exists() else None) or {}, home)
    config["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
    config.setdefault("storage", {"sqlite": {"base_dir": str(home)}})
    config.setdefault("local_artifact_storage", {
        "module": "dagster._core.storage.root", "class": "LocalArtifactStorage", "config": {"base_dir": str(home)}})
    config.setdefault("compute_logs", {
        "module": "dagster._core.storage.local_compute_log_manager", "class": "LocalComputeLogManager",
        "config": {"base_dir": str(home / "storage")}})
    config.get("concurrency", {}).pop("runs", None)  # queue limits; the command runs one run at a time
    return config


class _Console:
    """Copies a webserver's console, line by line, to the log file, and notes what uvicorn says of the socket:
    the port it listens on, or that the port was taken. The thread ends when every process writing to the
    console (the webserver, its code server, its run workers) has closed it."""

    def __init__(self, stream, log_path: Path):
        self.listening_on: int | None = None
        self.port_taken = False
        self._thread = threading.Thread(target=self._copy, args=(stream, log_path), daemon=True,
                                        name="webserver-console")
        self._thread.start()

    def _copy(self, stream, log_path: Path) -> None:
        with stream, log_path.open("ab") as log:
            for line in iter(stream.readline, b""):
                log.write(line)
                log.flush()
                found = LISTENING.search(line)
                if found:
                    self.listening_on = int(found.group(1))
                self.port_taken = self.port_taken or PORT_TAKEN in line.lower()

    def settle(self, seconds: float) -> None:
        """Give the thread up to ``seconds`` to read what an exited webserver wrote last."""
        self._thread.join(seconds)


@dataclass(frozen=True)
class Webserver:
    """The webserver this command started, proven to be the one listening on 127.0.0.1:``port``."""

    process: subprocess.Popen
    port: int
    path_prefix: str
    log_path: Path

    @property
    def graphql_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path_prefix}/graphql"

    def client(self, connect_seconds: float, answer_seconds: float):
        return graphql_client(self.port, self.path_prefix, connect_seconds, answer_seconds)

    def exit_status(self) -> int | None:
        """None while the webserver runs, else its exit status."""
        return self.process.poll()


def graphql_client(port: int, path_prefix: str, connect_seconds: float, answer_seconds: float):
    """A ``dagster_graphql.DagsterGraphQLClient`` of the webserver on 127.0.0.1:``port`` that bypasses any
    proxy; a request waits ``connect_seconds`` for the connection and ``answer_seconds`` for the answer."""
    from dagster_graphql import DagsterGraphQLClient
    from gql.transport.requests import RequestsHTTPTransport

    transport = RequestsHTTPTransport(url=f"http://127.0.0.1:{port}{path_prefix}/graphql",
                                      timeout=(connect_seconds, answer_seconds), proxies=NO_PROXIES)
    return DagsterGraphQLClient("127.0.0.1", port_number=port, path_prefix=path_prefix, transport=transport)


def location_state(server: Webserver) -> str | None:
    """None while the code location loads (or the webserver does not answer), ``""`` once it is loaded, else
    its load error."""
    query = ('{"query": "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus '
             'locationOrLoadError { __typename ... on PythonError { message } } } } } }"}')
    request = urllib.request.Request(server.graphql_url, data=query.encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30) as response:
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


def _bound(process: subprocess.Popen, console: _Console, port: int, log_path: Path, deadline: float) -> bool:
    """Wait until the webserver says it listens on ``port`` (True) or exits because the port was taken
    (False); raise if it exits for another reason or does neither in time."""
    while time.monotonic() < deadline:
        if console.listening_on == port:
            return True
        if process.poll() is not None:
            console.settle(5)
            if console.port_taken:
                return False
            raise WebserverUnavailableError(
                f"dagster-webserver exited with status {process.returncode} as it started; see {log_path}")
        time.sleep(0.2)
    raise WebserverUnavailableError(f"dagster-webserver did not listen on 127.0.0.1:{port} within "
                                    f"{START_TIMEOUT_SECONDS} s; see {log_path}")


def _wait_until_loaded(server: Webserver, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.exit_status() is not None:
            raise WebserverUnavailableError(f"dagster-webserver exited with status {server.exit_status()} as it "
                                            f"started; see {server.log_path}")
        state = location_state(server)
        if state == "":
            return
        if state:
            raise WebserverUnavailableError(f"the code location {LOCATION} did not load: {state.splitlines()[0]}")
        time.sleep(0.5)
    raise WebserverUnavailableError(f"the webserver did not load the code location within {START_TIMEOUT_SECONDS} s; "
                                    f"see {server.log_path}")


@contextmanager
def own_webserver(home: Path, environ: Mapping[str, str], echo=print) -> Iterator[Webserver]:
    """A webserver that launches runs into the instance of ``home``, for the length of the block, proven to be
    the one this process started (see the module's docstring). Its code location loads with the variables
    ``environ`` (the command's environment with its own ``--source`` and ``--data-dir``)."""
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "churn-dagster-servers.log"
    with tempfile.TemporaryDirectory(prefix="churn-dagster-") as folder:
        launcher_home = Path(folder)
        (launcher_home / "dagster.yaml").write_text(yaml.safe_dump(launching_instance(home)))
        workspace = launcher_home / "workspace.yaml"
        workspace.write_text(WORKSPACE.format(cwd=os.getcwd()))
        path_prefix = f"/churn-dagster-{secrets.token_hex(16)}"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        for _ in range(PORT_ATTEMPTS):
            port = _free_port()
            echo(f"code location {LOCATION}: webserver on 127.0.0.1:{port} (its log: {log_path})")
            process = subprocess.Popen(
                [_bin("dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-l", path_prefix,
                 "--uvicorn-log-level", "info", "-w", str(workspace)],
                env={**environ, "DAGSTER_HOME": str(launcher_home)}, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            console = _Console(process.stdout, log_path)
            try:
                if _bound(process, console, port, log_path, deadline):
                    server = Webserver(process, port, path_prefix, log_path)
                    _wait_until_loaded(server, deadline)
                    yield server
                    return
                echo(f"  port {port} was taken meanwhile; trying another")
            finally:
                _stop(process)
                console.settle(5)
        raise WebserverUnavailableError(f"dagster-webserver found each of {PORT_ATTEMPTS} free ports taken by the "
                                        f"time it bound them; see {log_path}")
