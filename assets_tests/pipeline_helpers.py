"""Run the transforms (without Dagster) over a folder of source files, for tests that check their outputs."""

from __future__ import annotations

from pathlib import Path

import duckdb
from conftest import CALENDAR, all_days

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.stages.cohorts.sql import cohorts, labels
from churn_dagster.stages.features.sql import features, sessions, window
from churn_dagster.stages.ingest.sql import ingest
from churn_dagster.stages.tensors.sql import tensors
from churn_dagster.storage.lake import Lake


def ingest_folder(con: duckdb.DuckDBPyConnection, folder: Path, lake: Lake, stems=None) -> dict:
    results = {}
    for spec in fmt.ALL_FILES:
        if stems is not None and spec.stem not in stems:
            continue
        path = folder / f"{spec.stem}.csv"
        results[spec.stem] = ingest(con, spec, [path], lake, CALENDAR, all_days() if spec.daily else None)
    return results


def cohorts_from_impressions(tmp_path: Path, lake: Lake, con: duckdb.DuckDBPyConnection, imps, cohort_days) -> None:
    """Write ``imps`` as a source folder, ingest it, and build every day's activity and the cohorts' members."""
    from conftest import write_impressions, write_snapshots

    src = tmp_path / "src"
    write_impressions(src, imps)
    write_snapshots(src)
    ingest_folder(con, src, lake, stems={"impression_data"})
    for d in range(1, CALENDAR.num_days + 1):
        cohorts.build_user_day_activity(con, lake, CALENDAR.day(d))
    cohorts.build_cohort_users(con, lake, CALENDAR, cohort_days)
    window.build_window_impressions(con, lake, CALENDAR, cohort_days)


def build_cohort_graph(con, lake: Lake, cohort_days, split=labels.SplitSettings(), gap_minutes: float = 30.0):
    """Activity for every day, then membership, labels, sessions and features for ``cohort_days``."""
    for day in all_days():
        cohorts.build_user_day_activity(con, lake, day)
    cohorts.build_cohort_users(con, lake, CALENDAR, cohort_days)
    window.build_window_impressions(con, lake, CALENDAR, cohort_days)
    labels.build_splits(con, lake, cohort_days, split)
    _, thresholds = labels.build_labels(con, lake, CALENDAR, cohort_days)
    sessions.build_sessions(con, lake, CALENDAR, cohort_days, gap_minutes)
    features.build_static_features(con, lake, CALENDAR, cohort_days)
    features.build_kpi_features(con, lake, CALENDAR, cohort_days, publish_day_anchor=31)
    return thresholds


def build_all_tensors(con, lake: Lake, cohort_days, max_sessions: int = 192) -> None:
    for c in cohort_days:
        tensors.build_tensors(con, lake, c, max_sessions)


def rows(con: duckdb.DuckDBPyConnection, path: Path, order: str = "") -> list[dict]:
    cur = con.execute(f"SELECT * FROM read_parquet($p, hive_partitioning = false) {order}", {"p": str(path)})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
