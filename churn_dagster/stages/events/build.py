"""Build the cohort tables and sequence tensors of an event log for a range of cohorts in one pass.

One DuckDB session reads the canonical events once, finds the members of every cohort asked for, and
writes per cohort: ``features.parquet`` (static features), ``labels.parquet`` (split and label
components) and a tensor folder in the layout the networks read (``stages/tensors/ml/data.py``: daily
steps back to back, offsets, the static matrix, users and the training moments). Every folder is
published by an atomic swap, every file sorted on the user id, so a re-run writes the same bytes, whether
a cohort was built alone or in a range.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from churn_dagster.stages.cohorts.sql.labels import SplitSettings, split_params
from churn_dagster.stages.events.sql import cohorts as sql
from churn_dagster.stages.events.sql import users as users_sql
from churn_dagster.stages.events.sql.mapping import EventMapping
from churn_dagster.stages.events.sql.sequences import step_features, steps_sql
from churn_dagster.stages.events.sql.times import TimeRule, sql_text
from churn_dagster.storage.duck import DERIVED_DECIMALS, atomic_dir, literal_path

LABEL_COLUMNS = ("churned", "frequency", "impressions", "quality_raw")


@dataclass(frozen=True)
class CohortBuild:
    cohort: date
    users: int
    labelled: bool
    churned: int | None
    train_users: int


def event_types(con: duckdb.DuckDBPyConnection, events: Path) -> list[str]:
    """The event types that get their own features: the most frequent ones, ties by name."""
    rows = con.execute(f"SELECT event_type FROM read_parquet($p) GROUP BY event_type ORDER BY count(*) DESC, "
                       f"event_type LIMIT {sql.MAX_TYPE_FEATURES}", {"p": literal_path(events)}).fetchall()
    return [r[0] for r in rows]


def rounded_table(con: duckdb.DuckDBPyConnection, table: str, where: str = "TRUE", order: str = "user_id") -> pa.Table:
    """Rows of temp table ``table`` sorted by ``order``, floating-point columns rounded: parallel aggregation
    sums in a varying order, and the rounding makes a re-run write the same bytes."""
    columns = con.execute(f"DESCRIBE {table}").fetchall()
    select = ", ".join(f"round({n}, {DERIVED_DECIMALS}) AS {n}" if t in ("DOUBLE", "FLOAT") else n for n, t, *_ in columns)
    return con.sql(f"SELECT {select} FROM {table} WHERE {where} ORDER BY {order}").to_arrow_table()


def _user_features(con: duckdb.DuckDBPyConnection, users: Path, attributes: tuple[str, ...],
                   time: TimeRule) -> list[tuple[str, str]]:
    """The users table's features: numeric attributes as numbers, the others as indicators of their most
    frequent values (over the whole table, which holds no label), and the days from signup to first event."""
    table = sql_text(literal_path(users))
    numeric, categories = {}, {}
    for k in range(len(attributes)):
        value = f"nullif(trim(a_{k}), '')"
        numeric[k] = con.execute(f"SELECT count(*) FILTER (WHERE {value} IS NOT NULL AND try_cast({value} AS DOUBLE) "
                                 f"IS NULL) = 0 FROM read_parquet({table})").fetchone()[0]
        categories[k] = [r[0] for r in con.execute(
            f"SELECT {value} AS v FROM read_parquet({table}) WHERE v IS NOT NULL GROUP BY v "
            f"ORDER BY count(*) DESC, v LIMIT {users_sql.MAX_CATEGORIES}").fetchall()]
    signup = f"datediff('day', ({time.local_timestamp('u.signup_ms')})::DATE, m.first_day)"  # local days, as events
    return [*users_sql.attribute_features(attributes, numeric, categories), ("signup_lead_days", signup)]


def add_user_features(con: duckdb.DuckDBPyConnection, users: Path, attributes: tuple[str, ...],
                       time: TimeRule) -> None:
    extra = ", ".join(f"{sql_} AS {name}" for name, sql_ in _user_features(con, users, attributes, time))
    con.execute(f"CREATE OR REPLACE TEMP TABLE _features AS SELECT f.*, {extra} FROM _features f "
                f"JOIN _members m USING (user_id) LEFT JOIN read_parquet({sql_text(literal_path(users))}) u "
                "USING (user_id)")


def build_cohorts(con: duckdb.DuckDBPyConnection, events: Path, cohorts: list[date], log_last_day: date,
                  windows: sql.Windows, mapping: EventMapping, split: SplitSettings,
                  folder_of, progress=lambda _: None, users: Path | None = None,
                  attributes: tuple[str, ...] = ()) -> list[CohortBuild]:
    """Write every cohort's folder (``folder_of(cohort)``: its final path); one summary per cohort. ``users``:
    the checked users table, whose ``attributes`` and signup time become features."""
    types = event_types(con, events)
    con.execute(f"CREATE OR REPLACE TEMP VIEW _events AS SELECT * FROM read_parquet({sql_text(literal_path(events))})")
    con.execute(sql.members_sql(windows, cohorts))
    con.execute(sql.observed_sql(windows, mapping))
    closed = [c for c in cohorts if windows.labels_close(c) <= log_last_day]
    con.execute(f"CREATE OR REPLACE TEMP TABLE _features AS {sql.features_sql(windows, mapping, types)}")
    if users is not None:
        add_user_features(con, users, attributes, mapping.time)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _labels AS {sql.labels_sql(windows, mapping, types, closed)}",
                split_params(split))
    steps = step_features(mapping, types)
    built = []
    for cohort in cohorts:
        progress(f"cohort {cohort}: features, labels and daily sequences")
        key = f"DATE '{cohort.isoformat()}'"
        f = rounded_table(con, "_features", f"cohort_day = {key}")
        lab = rounded_table(con, "_labels", f"cohort_day = {key}")
        seq = con.execute(steps_sql(mapping, types, key), {"observation_days": windows.observation_days}).fetchnumpy()
        with atomic_dir(folder_of(cohort)) as out:
            _write(out, f, lab, seq, [n for n, _ in steps], windows.observation_days)
        churned = pa.compute.sum(lab["churned"]).as_py() if cohort in closed else None
        built.append(CohortBuild(cohort, f.num_rows, cohort in closed, churned and int(churned),
                                 int(pa.compute.sum(pa.compute.equal(lab["split"], "train")).as_py() or 0)))
    con.execute("DROP TABLE _observed; DROP TABLE _members; DROP TABLE _features; DROP TABLE _labels; DROP VIEW _events")
    return built


def static_columns(features: pa.Table) -> list[str]:
    return [n for n in features.column_names if n not in ("user_id", "cohort_day")]


def _write(out: Path, features: pa.Table, labels: pa.Table, steps: dict, step_names: list[str], days: int) -> None:
    pq.write_table(features, out / "features.parquet", compression="zstd")
    pq.write_table(labels, out / "labels.parquet", compression="zstd")
    n = features.num_rows
    if labels.column("user_id").to_pylist() != features.column("user_id").to_pylist():
        raise RuntimeError(f"{out}: the feature and label rows disagree on the users")
    seq = np.column_stack([np.asarray(steps[c], np.float32) for c in step_names]) if n else np.zeros((0, len(step_names)), np.float32)
    static_names = static_columns(features)
    static = np.column_stack([features.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
                              for c in static_names]).astype(np.float32) if n else np.zeros((0, len(static_names)), np.float32)
    np.save(out / "sequences.npy", seq)
    np.save(out / "offsets.npy", np.arange(n + 1, dtype=np.int64) * days)
    np.save(out / "static.npy", static)
    users = labels.select(["user_id", "cohort_day", "split", *LABEL_COLUMNS]).append_column(
        "row_idx", pa.array(np.arange(n, dtype=np.int64)))
    pq.write_table(users, out / "users.parquet", compression="zstd")
    train = np.asarray(labels.column("split").to_pylist()) == "train"
    train_steps = seq.reshape(n, days, -1)[train].reshape(-1, seq.shape[1]) if n else seq
    mean = train_steps.astype(np.float64).mean(axis=0) if len(train_steps) else np.zeros(seq.shape[1])
    std = train_steps.astype(np.float64).std(axis=0) if len(train_steps) else np.ones(seq.shape[1])
    meta = {"users": n, "train_users": int(train.sum()), "train_sessions": int(train.sum()) * days,
            "steps_per_user": days,
            "sequence": {"features": step_names, "train_mean": np.round(mean, DERIVED_DECIMALS).tolist(),
                         "train_std": np.round(std, DERIVED_DECIMALS).tolist()},
            "static": {"features": static_names, "missing_as": "NaN"}}
    (out / "normalization.json").write_text(json.dumps(meta, indent=2))
