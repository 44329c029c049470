"""The instance storage follows the dagster.yaml in DAGSTER_HOME, and nothing else: the repository root's file
keeps runs in SQLite files under DAGSTER_HOME, deploy/dagster_home/dagster.yaml keeps them in PostgreSQL (a
real PostgreSQL cluster here; the whole deployment topology runs in test_integration_stack)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import yaml
from local_servers import deployment_home, postgres_cluster

REPO = Path(__file__).resolve().parents[1]


@dg.asset
def answer() -> int:
    return 42


def _local_home(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _deployment_home(tmp_path: Path, monkeypatch) -> Path:
    home = deployment_home(tmp_path / "home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _materialize(instance: dg.DagsterInstance) -> str:
    result = dg.materialize([answer], instance=instance)
    assert result.success
    return result.run_id


def test_local_yaml_keeps_runs_in_sqlite_under_dagster_home(tmp_path, monkeypatch):
    home = _local_home(tmp_path, monkeypatch)
    # Postgres variables left in the shell do not matter: only DAGSTER_HOME chooses the instance file.
    for var in ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_PORT"):
        monkeypatch.setenv(var, "unused")
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        run_id = _materialize(instance)
    with sqlite3.connect(home / "history" / "runs.db") as runs:
        assert runs.execute("SELECT status FROM runs WHERE run_id = ?", (run_id,)).fetchall() == [("SUCCESS",)]
    with sqlite3.connect(home / "history" / "runs" / f"{run_id}.db") as events:
        kinds = {row[0] for row in events.execute("SELECT dagster_event_type FROM event_logs")}
    assert {"STEP_SUCCESS", "ASSET_MATERIALIZATION"} <= kinds
    assert (home / "schedules" / "schedules.db").is_file()
    assert list((home / "storage" / run_id / "compute_logs").iterdir())  # the step's stdout/stderr


def test_deployment_yaml_keeps_runs_in_postgres(tmp_path, monkeypatch):
    with postgres_cluster() as pg:
        pg.create_database("dagster")
        home = _deployment_home(tmp_path, monkeypatch)
        for var, value in pg.env("dagster").items():
            monkeypatch.setenv(var, value)
        with dg.DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert instance.run_storage.postgres_url.startswith("postgresql+psycopg2://")
            # Child processes get the instance's configuration with environment references, not the password.
            assert pg.password not in instance.get_ref().storage_data.config_yaml
            run_id = _materialize(instance)
        query = f"SELECT status FROM runs WHERE run_id = '{run_id}'"
        rows = subprocess.run(["psql", pg.url("dagster"), "-At", "-c", query],
                              check=True, capture_output=True, text=True).stdout.split()
        assert rows == ["SUCCESS"]
    assert not (home / "history").exists()
    assert list((home / "storage" / run_id / "compute_logs").iterdir())


def test_deployment_yaml_without_postgres_variables_fails_clearly(tmp_path, monkeypatch):
    _deployment_home(tmp_path, monkeypatch)
    for var in ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_PORT"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(dg.DagsterInvalidConfigError, match="DAGSTER_PG_USERNAME"):
        dg.DagsterInstance.get()


def test_the_cli_launches_into_the_same_stores_without_a_queue(tmp_path):
    """churn-dagster materialize's webserver reads a copy of the instance's dagster.yaml from another folder:
    every store stays pinned to the user's DAGSTER_HOME, runs launch at once, and the rest is unchanged."""
    from churn_dagster.runs.servers import launching_instance

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    local = launching_instance(home)
    assert local["storage"] == {"sqlite": {"base_dir": str(home)}}
    assert local["compute_logs"]["config"] == {"base_dir": str(home / "storage")}
    assert local["local_artifact_storage"]["config"] == {"base_dir": str(home)}
    assert local["run_coordinator"]["class"] == "DefaultRunCoordinator"
    assert "runs" not in local["concurrency"] and local["concurrency"]["pools"]["default_limit"] == 1  # gpu pool
    assert local["run_retries"] == {"enabled": True, "max_retries": 1}
    shutil.copy(REPO / "deploy" / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    deployed = launching_instance(home)
    assert deployed["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert deployed["run_coordinator"]["class"] == "DefaultRunCoordinator"
    launcher = tmp_path / "launcher"
    launcher.mkdir()
    (launcher / "dagster.yaml").write_text(yaml.safe_dump(local))
    with dg.DagsterInstance.from_config(str(launcher)) as instance:  # a valid instance, storing under home
        assert dg.materialize([answer], instance=instance).success
    with sqlite3.connect(home / "history" / "runs.db") as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
