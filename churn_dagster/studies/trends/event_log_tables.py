"""Write the trend study's tables of an event log (:mod:`churn_dagster.studies.trends.sql.event_logs`) into one
folder, published at once: ``users.parquet`` (labels, split, median filter), ``macro.parquet``,
``sessions.parquet``, ``daily.parquet`` and ``columns.json`` (the event-count columns and the settings).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from churn_dagster.stages.cohorts.sql.labels import SplitSettings, split_params
from churn_dagster.stages.events.build import add_user_features, event_types, rounded_table
from churn_dagster.stages.events.sql import cohorts as cohort_sql
from churn_dagster.stages.events.sql.mapping import EventMapping
from churn_dagster.stages.events.sql.times import sql_text
from churn_dagster.storage.duck import atomic_dir, literal_path
from churn_dagster.studies.trends.sql import event_logs as sql

TABLES = ("users", "macro", "sessions", "daily")


@dataclass(frozen=True)
class TrendTables:
    """What was written: users (all, and kept by the filter), sessions of period 1 and the vocabulary."""

    users: int
    kept: int
    sessions: int
    event_columns: tuple[str, ...]
    cohorts: tuple[date, ...]


def build_trend_tables(con: duckdb.DuckDBPyConnection, events: Path, w: sql.TrendWindows, mapping: EventMapping,
                       last_day: date, split: SplitSettings, folder: Path, users: Path | None = None,
                       attributes: tuple[str, ...] = ()) -> TrendTables:
    """Write the folder; ``users``: the checked users table, whose attributes join the macro features."""
    types = event_types(con, events)
    all_types = con.execute("SELECT count(DISTINCT event_type) FROM read_parquet($p)",
                            {"p": literal_path(events)}).fetchone()[0]
    columns = sql.event_columns(types, all_types > len(types))
    con.execute(f"CREATE OR REPLACE TEMP VIEW _events AS SELECT * FROM read_parquet({sql_text(literal_path(events))})")
    con.execute(sql.members_sql(w, last_day))
    period = w.as_observation()
    con.execute(cohort_sql.observed_sql(period, mapping))
    con.execute(f"CREATE OR REPLACE TEMP TABLE _features AS {cohort_sql.features_sql(period, mapping, types)}")
    if users is not None:
        add_user_features(con, users, attributes, mapping.time)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _trend_users AS {sql.labels_sql(w, mapping)}", split_params(split))
    con.execute(f"CREATE OR REPLACE TEMP TABLE _trend_sessions AS {sql.sessions_sql(columns)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _trend_daily AS {sql.daily_sql(columns, w.first_days)}")
    tables = {"users": rounded_table(con, "_trend_users"), "macro": rounded_table(con, "_features"),
              "sessions": rounded_table(con, "_trend_sessions", order="user_id, global_session_idx"),
              "daily": rounded_table(con, "_trend_daily", order="user_id, day_num")}
    con.execute("DROP TABLE _trend_users; DROP TABLE _trend_sessions; DROP TABLE _trend_daily; DROP TABLE _features; "
                "DROP TABLE _observed; DROP TABLE _members; DROP VIEW _events")
    with atomic_dir(folder) as out:
        for name, table in tables.items():
            pq.write_table(table, out / f"{name}.parquet", compression="zstd")
        (out / "columns.json").write_text(json.dumps({
            "event_columns": list(columns), "event_types": {c: t for c, t in columns.items()},
            "windows": {**dataclasses.asdict(w), "start": w.start.isoformat()}}, indent=2))
    labels = tables["users"]
    return TrendTables(labels.num_rows, int(sum(labels.column("kept_by_filter").to_pylist())),
                       tables["sessions"].num_rows, tuple(columns),
                       tuple(sorted(set(labels.column("cohort_day").to_pylist()))))


def read_columns(folder: Path) -> dict:
    return json.loads((folder / "columns.json").read_text())
