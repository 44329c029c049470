"""docker-compose.yml, .env.example and dagster.yaml say what the deployment promises (no Docker engine runs
here, so the files are checked as data; the same topology runs natively in test_integration_stack)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


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


def test_training_container_reserves_a_gpu():
    devices = SERVICES["code"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def test_every_published_port_is_loopback_only():
    published = [(name, port) for name, s in SERVICES.items() for port in s.get("ports", [])]
    assert {name for name, _ in published} == {"postgres", "webserver", "mlflow"}
    assert all(str(port).startswith("127.0.0.1:") for _, port in published)


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


def test_instance_config_queues_runs_and_limits_the_gpu_pool():
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert config["storage"]["custom"]["class"] == "EnvironmentSelectedStorage"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["runs"]["max_concurrent_runs"] >= 1
    assert config["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
