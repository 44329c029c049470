"""dagster.yaml picks the instance storage from the environment alone (Postgres is exercised for real in
test_integration_stack)."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path, monkeypatch):
    shutil.copy(REPO / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    for var in ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_PORT"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_sqlite_by_default(home):
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert (home / "storage").is_dir()


def test_incomplete_postgres_settings_fail_clearly(home, monkeypatch):
    monkeypatch.setenv("DAGSTER_PG_HOST", "127.0.0.1")
    with pytest.raises(ValueError, match="missing DAGSTER_PG_DB, DAGSTER_PG_PASSWORD, DAGSTER_PG_USERNAME"):
        dg.DagsterInstance.get()
