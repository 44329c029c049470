"""Dagster instance storage chosen by environment variables: SQLite by default, PostgreSQL when the
``DAGSTER_PG_*`` variables are set.

``dagster.yaml`` cannot branch on whether a variable exists, so it names this class as its ``storage``; the
class builds Dagster's own SQLite or Postgres storage. Switching a deployment to Postgres then needs only
environment variables, and the same ``dagster.yaml`` serves ``dagster dev``, the CLI, CI and docker compose.
Credentials stay environment references in the instance configuration handed to child processes.
"""

import os

import yaml
from dagster import _check as check
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData

PG_VARIABLES = ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB")


def postgres_requested() -> bool:
    present = [v for v in PG_VARIABLES if os.environ.get(v)]
    if present and len(present) < len(PG_VARIABLES):
        missing = sorted(set(PG_VARIABLES) - set(present))
        raise ValueError(f"Postgres storage needs all of {', '.join(PG_VARIABLES)}; missing {', '.join(missing)}")
    return bool(present)


def postgres_config() -> dict:
    """The dagster-postgres storage config, every value read from the environment when it is loaded."""
    return {
        "postgres_db": {
            "username": {"env": "DAGSTER_PG_USERNAME"},
            "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": {"env": "DAGSTER_PG_HOST"},
            "db_name": {"env": "DAGSTER_PG_DB"},
            "port": int(os.environ.get("DAGSTER_PG_PORT", "5432")),
            # dagster-postgres is written against psycopg2; SQLAlchemy 2.1 would otherwise pick psycopg 3.
            "scheme": "postgresql+psycopg2",
        }
    }


class EnvironmentSelectedStorage(DagsterStorage, ConfigurableClass):
    """The ``storage`` entry point of dagster.yaml. It is never instantiated: ``from_config_value`` returns
    Dagster's own SQLite or Postgres storage (it subclasses ``DagsterStorage`` only so the instance accepts
    it as a storage class)."""

    @classmethod
    def config_type(cls) -> dict:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: dict) -> DagsterStorage:
        if postgres_requested():
            from dagster_postgres import DagsterPostgresStorage
            from dagster_postgres.utils import pg_url_from_config

            from dagster._config import process_config

            config = postgres_config()
            resolved = process_config(DagsterPostgresStorage.config_type(), config)
            check.invariant(resolved.success, f"invalid Postgres settings: {resolved.errors}")
            data = ConfigurableClassData("dagster_postgres", "DagsterPostgresStorage", yaml.dump(config))
            return DagsterPostgresStorage(pg_url_from_config(resolved.value), inst_data=data)
        base_dir = os.path.join(os.environ["DAGSTER_HOME"], "storage")
        data = ConfigurableClassData(
            "dagster._core.storage.sqlite_storage", "DagsterSqliteStorage", yaml.dump({"base_dir": base_dir})
        )
        return DagsterSqliteStorage.from_local(base_dir, inst_data=data)
