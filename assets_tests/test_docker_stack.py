"""docker-compose.yml built and run on a real Docker engine: `docker-compose up -d --build`, every healthcheck
green, the code location listed, the data graph and one model run through GraphQL and found in Dagster's and
MLflow's PostgreSQL, history kept across a restart of the webserver and the daemon, only loopback ports
published; then the code server switched to one container per step (dagster-docker), whose run of two cohorts
must write the same bytes as the in-process run. Everything the test created on the engine is removed at the
end, and a dockerd it started is stopped (docker_engine.py).

Selected on its own with ``pytest -m stack``; about 7 minutes with nothing cached and 4 with the images
cached, on 2 cores (README).
"""

from __future__ import annotations

import socket
from datetime import timedelta

import docker_engine
import pytest
from compose_stack import (
    COHORT_FILES,
    COMPUTE_LOGS,
    STEP_CONTAINERS,
    ComposeStack,
    ensure_removed,
    free_ports,
    host_addresses,
    in_data_volume,
    torch_wheel,
)
from conftest import CALENDAR
from stack_client import (
    check_lstm_training_in_mlflow,
    launch_data_graph_and_one_model,
    partition_range,
)

from churn_dagster.synth.generator import generate

pytestmark = pytest.mark.stack

TWO_COHORTS = (CALENDAR.first_day, CALENDAR.first_day + timedelta(days=1))
PUBLISHED = {"postgres": 5432, "webserver": 3000, "mlflow": 5000}
STEP_STATS = "query S($id: ID!) { runOrError(runId: $id) { ... on Run { stepStats { stepKey status } } } }"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with docker_engine.engine() as engine:
        root = tmp_path_factory.mktemp("docker_stack")
        placed, missing = torch_wheel(root)
        if missing:
            pytest.skip(f"no CPU wheel of torch for the image ({missing}); add the PyTorch CPU index to pip")
        try:
            images = docker_engine.base_images(engine, root)
            generate(root / "landing", users=3_000, seed=9)
            ports = free_ports(("POSTGRES_PORT", "WEBSERVER_PORT", "MLFLOW_PORT"))
            s = ComposeStack(engine, root, ComposeStack.settings_for(engine, root / "landing", images, ports))
            try:
                s.compose("up", "-d", "--build", timeout=1800)
                s.wait_ready()
                yield s
            finally:
                s.close()
                left = s.leftovers()
            assert not left, f"left on the engine after teardown: {left}"
        finally:
            ensure_removed(placed)


@pytest.fixture(scope="module")
def launched(stack):
    """The data graph (its cohort run in-process, as the data jobs run by default: the reference of the
    step-container run) and one model, with the sensors and schedules stopped."""
    stack.api.stop_automation()
    return launch_data_graph_and_one_model(stack.api)


def test_services_are_healthy_and_the_location_is_listed(stack):
    assert {s: stack.health(s) for s in ("postgres", "code", "webserver", "mlflow")} == dict.fromkeys(
        ("postgres", "code", "webserver", "mlflow"), "healthy")
    assert stack.location_loaded() and stack.daemons_healthy()


def test_runs_are_in_dagster_postgres(stack, launched):
    rows = stack.exec("postgres", "psql", "-U", "churn", "-d", "dagster", "-At", "-c",
                      "SELECT run_id, status FROM runs").split()
    stored = dict(r.split("|") for r in rows)
    assert {run_id: stored.get(run_id) for run_id in launched.values()} == dict.fromkeys(launched.values(), "SUCCESS")
    assert in_data_volume(stack, COMPUTE_LOGS, *launched.values()) == dict.fromkeys(launched.values(), True)


def test_training_run_is_in_mlflow_postgres(stack, launched):
    runs = check_lstm_training_in_mlflow(f"http://127.0.0.1:{stack.settings['MLFLOW_PORT']}", launched["training_job"])
    stored = stack.exec("postgres", "psql", "-U", "churn", "-d", "mlflow", "-At", "-c",
                        "SELECT run_uuid FROM runs").split()
    assert {r.info.run_id for r in runs} <= set(stored)


def test_only_loopback_ports_are_published(stack, launched):
    published = {}
    for service in ("postgres", "code", "webserver", "daemon", "mlflow"):
        ports = stack.inspect(stack.container(service))["NetworkSettings"]["Ports"] or {}
        for bindings in ports.values():
            for binding in bindings or []:
                published[service] = (binding["HostIp"], int(binding["HostPort"]))
    assert published == {s: ("127.0.0.1", int(stack.settings[f"{s.upper()}_PORT"])) for s in PUBLISHED}
    for _, port in published.values():
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        for address in host_addresses():  # from the host's other addresses nothing answers
            with socket.socket() as probe:
                probe.settimeout(3)
                assert probe.connect_ex((address, port)) != 0, f"{address}:{port} answers"


def test_history_survives_a_restart(stack, launched):
    before = {stack.container(s) for s in ("webserver", "daemon")}
    stack.compose("restart", "webserver", "daemon")
    stack.wait_ready()
    assert {stack.container(s) for s in ("webserver", "daemon")} == before  # the same containers, restarted
    statuses = stack.api.run_statuses()
    assert {run_id: statuses.get(run_id) for run_id in launched.values()} == dict.fromkeys(
        launched.values(), "SUCCESS")


def test_steps_in_their_own_containers_write_the_same_bytes(stack, launched):
    cohorts = [c.isoformat() for c in TWO_COHORTS]
    in_process = in_data_volume(stack, COHORT_FILES, *cohorts)
    assert len(in_process) >= 10, in_process
    stack.files.append(STEP_CONTAINERS)
    stack.compose("up", "-d")  # recreates `code` with the docker executor and the Docker socket
    stack.wait_ready()
    run_id = stack.api.run_to_success("cohort_features_job", partition_range(*TWO_COHORTS))
    in_containers = in_data_volume(stack, COHORT_FILES, *cohorts)
    assert {p: h for p, (h, _) in in_containers.items()} == {p: h for p, (h, _) in in_process.items()}
    assert all(in_containers[p][1] != mtime for p, (_, mtime) in in_process.items())  # every file rewritten
    steps = stack.api.query(STEP_STATS, {"id": run_id})["runOrError"]["stepStats"]
    assert steps and all(s["status"] == "SUCCESS" for s in steps), steps
    containers = [c for c in stack.step_containers() if c["Config"]["Env"]
                  and "DAGSTER_RUN_JOB_NAME=cohort_features_job" in c["Config"]["Env"]]
    started = {e.split("=", 1)[1] for c in containers for e in c["Config"]["Env"]
               if e.startswith("DAGSTER_RUN_STEP_KEY=")}
    assert started == {s["stepKey"] for s in steps}  # one container per step
    assert all(c["State"]["ExitCode"] == 0 and c["Config"]["Image"] == stack.settings["CHURN_IMAGE"]
               for c in containers)
    assert all(any(m.get("Name") == f"{stack.project}_data" and m["Destination"] == "/data" for m in c["Mounts"])
               for c in containers)
