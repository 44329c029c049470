"""docker-compose.yml, .env.example, deploy/Dockerfile and the two dagster.yaml files say what the deployment
promises, checked as data (test_docker_stack runs them on a Docker engine, and test_integration_stack the
same topology natively)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DEPLOY_HOME = "deploy/dagster_home"
DEPLOY_INSTANCE = f"{DEPLOY_HOME}/dagster.yaml"


def _env_example() -> dict[str, str]:
    lines = (REPO / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_services_of_the_topology():
    assert set(SERVICES) == {"postgres", "code", "webserver", "daemon", "mlflow"}
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in SERVICES["postgres"]["volumes"])
    assert "dagster api grpc" in " ".join(SERVICES["code"]["command"])
    assert SERVICES["webserver"]["command"][0] == "dagster-webserver"
    assert SERVICES["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    mlflow = " ".join(SERVICES["mlflow"]["command"])
    assert "mlflow server" in mlflow and "postgres:5432" in mlflow and "--artifacts-destination /mlartifacts" in mlflow
    assert any(v.startswith("mlartifacts:") for v in SERVICES["mlflow"]["volumes"])
    for name in ("code", "webserver", "daemon", "mlflow"):
        assert SERVICES[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name


def test_gpu_overlay_reserves_a_gpu_for_the_training_container():
    """docker-compose.yml itself runs on any host (CPU torch); deploy/compose.gpu.yml adds the CUDA build and
    the GPU reservation for `code`, the container that executes the runs."""
    assert "deploy" not in SERVICES["code"]
    gpu = yaml.safe_load((REPO / "deploy" / "compose.gpu.yml").read_text())["services"]
    devices = gpu["code"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    for name in ("code", "webserver", "daemon"):  # one image for all three, so all build the CUDA one
        assert gpu[name]["build"]["args"]["TORCH_INDEX_URL"].endswith("/cu126"), name


def test_overlays_only_name_variables_of_the_env_file_or_their_own():
    """Every variable the overlays read is documented in .env.example, or has a default, or is one the
    overlay asks for by name with an error message."""
    for overlay in ("deploy/compose.gpu.yml", "deploy/compose.step-containers.yml", "deploy/local_bases/compose.yml"):
        text = (REPO / overlay).read_text()
        for name, rest in re.findall(r"\$\{([A-Z_]+)([^}]*)\}", text):
            assert name in _env_example() or rest.startswith((":-", ":?")) or f"${{{name}:?" in text, (overlay, name)


def test_every_published_port_is_loopback_only():
    published = [(name, port) for name, s in SERVICES.items() for port in s.get("ports", [])]
    assert {name for name, _ in published} == {"postgres", "webserver", "mlflow"}
    assert all(str(port).startswith("127.0.0.1:") for _, port in published)
    for service in ("postgres", "code", "webserver", "mlflow"):  # the Docker stack test waits for each
        assert "test" in SERVICES[service]["healthcheck"], service


def test_dagster_services_use_postgres_and_mlflow_server():
    for name in ("code", "webserver", "daemon"):
        env = SERVICES[name]["environment"]
        assert {"DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB"} <= set(env)
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_credentials_come_from_env_file_only():
    text = (REPO / "docker-compose.yml").read_text()
    referenced = set(re.findall(r"\$\{([A-Z_]+)", text))
    assert referenced <= set(_env_example()), referenced - set(_env_example())
    assert "change-me" not in text and "PASSWORD: " not in text.replace("PASSWORD: ${", "")
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO).returncode == 0
    tracked = subprocess.run(["git", "ls-files", ".env"], cwd=REPO, capture_output=True, text=True).stdout
    assert ignored and tracked == ""


def _instance(path: str) -> dict:
    return yaml.safe_load((REPO / path).read_text())


def test_instance_config_queues_runs_and_limits_the_gpu_pool():
    for path in ("dagster.yaml", DEPLOY_INSTANCE):
        config = _instance(path)
        assert config["run_coordinator"]["class"] == "QueuedRunCoordinator", path
        assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 1, path
        assert config["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}, path
        assert config["run_retries"] == {"enabled": True, "max_retries": 1}, path


def test_local_and_deployment_instances_differ_only_in_storage():
    """Dagster reads one dagster.yaml per DAGSTER_HOME, with no includes: the shared settings are written twice."""
    local, deployed = _instance("dagster.yaml"), _instance(DEPLOY_INSTANCE)
    assert "storage" not in local  # Dagster's default: SQLite under DAGSTER_HOME
    assert deployed.pop("storage") == {"postgres": {"postgres_db": {
        "username": {"env": "DAGSTER_PG_USERNAME"}, "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": {"env": "DAGSTER_PG_HOST"}, "db_name": {"env": "DAGSTER_PG_DB"},
        "port": {"env": "DAGSTER_PG_PORT"}, "scheme": "postgresql+psycopg2"}}}
    assert local == deployed


def test_containers_use_the_deployment_instance():
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    home = re.search(r"DAGSTER_HOME=(\S+)", dockerfile).group(1)
    assert f"COPY {DEPLOY_INSTANCE} {home}/dagster.yaml" in dockerfile
    assert "COPY dagster.yaml" not in dockerfile
    assert f"mkdir -p /data /landing /mlartifacts {home}/storage" in dockerfile  # the volume's owner is churn
    for name in ("code", "webserver", "daemon"):
        service = SERVICES[name]
        assert service["environment"]["DAGSTER_HOME"] == home, name
        assert {"DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB",
                "DAGSTER_PG_PORT"} <= set(service["environment"]), name
        assert f"dagster_storage:{home}/storage" in service["volumes"], name  # compute logs survive a rebuild


def test_deployment_home_keeps_only_its_instance_file_in_git():
    for written in ("storage/x", "history/runs.db", ".nux/nux.yaml", ".telemetry/id.yaml"):
        path = f"{DEPLOY_HOME}/{written}"
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0, path
    assert subprocess.run(["git", "check-ignore", "-q", DEPLOY_INSTANCE], cwd=REPO).returncode == 1
