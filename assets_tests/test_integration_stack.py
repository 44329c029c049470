"""The production topology of docker-compose.yml, brought up natively on loopback: PostgreSQL, the code
location's gRPC server, dagster-webserver, dagster-daemon and an MLflow server on PostgreSQL.

Runs are launched through the webserver's GraphQL API (queued, then started by the daemon), checked in
Dagster's Postgres storage and in MLflow's, survive a restart of the webserver and daemon, and the asset
graph page renders the project's assets in headless Chromium.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from local_servers import (
    Process,
    deployment_home,
    free_port,
    http_ok,
    is_loopback,
    listening_sockets,
    postgres_cluster,
    process_tree,
    wait_until,
)
from stack_client import DagsterGraphQL, check_lstm_training_in_mlflow, launch_data_graph_and_one_model

from churn_dagster.synth.generator import generate

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


class Stack:
    def __init__(self, root: Path, pg):
        self.root, self.pg = root, pg
        self.logs = root / "logs"
        self.logs.mkdir()
        self.home = home = deployment_home(root / "dagster_home")  # what the images hold in /opt/dagster/home
        self.grpc_port, self.web_port, self.mlflow_port = free_port(), free_port(), free_port()
        (root / "workspace.yaml").write_text(
            f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {self.grpc_port}\n"
            f"      location_name: churn_dagster\n")
        self.env = {
            **os.environ, **pg.env("dagster"), "DAGSTER_HOME": str(home), "CHURN_DATA_DIR": str(root / "data"),
            "CHURN_SOURCE_DIR": str(root / "source"), "MLFLOW_TRACKING_URI": self.mlflow_url,
            "CHURN_MLFLOW_UI_URL": self.mlflow_url, "CHURN_DUCKDB_MEMORY_LIMIT": "1GB",
        }
        self.procs: dict[str, Process] = {}
        self.api = DagsterGraphQL(self.web_url, lambda: "\n".join(p.tail() for p in self.procs.values()))

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self, name: str) -> None:
        commands = {
            "mlflow": [BIN / "mlflow", "server", "--backend-store-uri",
                       self.pg.url("mlflow").replace("postgresql://", "postgresql+psycopg2://"),
                       "--artifacts-destination", str(self.root / "mlartifacts"), "--serve-artifacts",
                       "--host", "127.0.0.1", "--port", str(self.mlflow_port), "--workers", "1"],
            "code": [BIN / "dagster", "api", "grpc", "--module-name", "churn_dagster.definitions",
                     "--host", "127.0.0.1", "--port", str(self.grpc_port)],
            "webserver": [BIN / "dagster-webserver", "--host", "127.0.0.1", "--port", str(self.web_port),
                          "--workspace", str(self.root / "workspace.yaml")],
            "daemon": [BIN / "dagster-daemon", "run", "--workspace", str(self.root / "workspace.yaml")],
        }
        self.procs[name] = Process(name, [str(c) for c in commands[name]], self.env, REPO, self.logs)
        ready = {
            "mlflow": lambda: http_ok(f"{self.mlflow_url}/health"),
            "code": lambda: _port_open(self.grpc_port),
            "webserver": lambda: http_ok(f"{self.web_url}/server_info"),
            "daemon": lambda: self.procs["daemon"].alive() and "daemon" in self.procs["daemon"].tail().lower(),
        }[name]
        try:
            wait_until(lambda: not self.procs[name].alive() or ready(), 120, name)
        finally:
            assert self.procs[name].alive(), f"{name} exited:\n{self.procs[name].tail()}"

    def stop(self, name: str) -> None:
        self.procs.pop(name).stop()

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("stack")
    generate(root / "source", users=3_000, seed=9)
    with postgres_cluster() as pg:
        pg.create_database("dagster")
        pg.create_database("mlflow")
        s = Stack(root, pg)
        try:
            for name in ("mlflow", "code", "webserver", "daemon"):
                s.start(name)
            yield s
        finally:
            s.close()


@pytest.fixture(scope="module")
def launched(stack):
    """The data graph and one model, launched through GraphQL one after the other."""
    return launch_data_graph_and_one_model(stack.api)


def test_nothing_listens_beyond_loopback(stack, launched):
    pids = set().union(*(process_tree(p.proc.pid) for p in stack.procs.values()))
    sockets = listening_sockets(pids)
    assert {stack.grpc_port, stack.web_port, stack.mlflow_port} <= {port for _, port in sockets}
    assert all(is_loopback(address) for address, _ in sockets), sockets


def test_runs_are_in_dagster_postgres_storage(stack, launched):
    rows = subprocess.run(
        ["psql", stack.pg.url("dagster"), "-At", "-c", "SELECT run_id, status FROM runs"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    stored = dict(r.split("|") for r in rows)
    assert all(stored[run_id] == "SUCCESS" for run_id in launched.values())
    assert not (stack.home / "history").exists()  # no SQLite run storage beside the deployment dagster.yaml
    assert all(any((stack.home / "storage" / run_id).rglob("*.out")) for run_id in launched.values())


def test_training_run_is_in_mlflow_on_postgres(stack, launched):
    check_lstm_training_in_mlflow(stack.mlflow_url, launched["training_job"])
    mlflow_runs = subprocess.run(["psql", stack.pg.url("mlflow"), "-At", "-c", "SELECT count(*) FROM runs"],
                                 check=True, capture_output=True, text=True).stdout.strip()
    assert int(mlflow_runs) >= 2


def test_history_survives_a_restart(stack, launched):
    for name in ("daemon", "webserver"):
        stack.stop(name)
    time.sleep(1)
    for name in ("webserver", "daemon"):
        stack.start(name)
    runs = stack.api.run_statuses()
    assert all(runs[run_id] == "SUCCESS" for run_id in launched.values())


def test_asset_graph_page_shows_the_assets(stack, launched, tmp_path):
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("Debian chromium and chromium-driver are not installed (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1920,9000",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    expected = {  # the global lineage page shows the groups; each group's graph page shows its assets
        "": ("raw", "cohorts", "labels", "features", "tensors", "models", "reports", "scoring"),
        "/locations/churn_dagster/asset-groups/raw": ("raw_impressions", "raw_user_demographics"),
        "/locations/churn_dagster/asset-groups/features": ("sessions", "static_features", "kpi_features"),
        "/locations/churn_dagster/asset-groups/models": ("lstm_churn", "hybrid_lstm_level", "xgboost_churn"),
        "/locations/churn_dagster/asset-groups/scoring": ("scoring_window", "churn_risk_scores"),
    }
    try:
        for page, names in expected.items():
            browser.get(f"{stack.web_url}{page or '/asset-groups'}")
            shot = stack.logs / f"asset_graph{page.replace('/', '_')}.png"
            try:
                wait_until(lambda: all(f">{n}<" in browser.page_source for n in names), 90, f"{page}", interval=1)
            finally:
                browser.save_screenshot(str(shot))
                shot.with_suffix(".html").write_text(browser.page_source)
    finally:
        browser.quit()
