"""A day without impressions is a normal day: its partitions are written empty, its metadata says so, and every
downstream step of the data graph runs (daily activity, cohorts, labels, sessions, features, tensors), whether
one day of the log is missing, the impression file holds only its header, or the configured calendar lies past
every row (so that every row is quarantined). Before, each ended in ``TypeError: unsupported operand type(s)
for /: 'NoneType' and 'int' (in raw_impressions)`` after other tables were already written."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from conftest import CALENDAR, resources_for

from churn_dagster.definitions import build_definitions
from churn_dagster.runs.runner import data_graph_steps, run_steps
from churn_dagster.synth.generator import generate

REPO = Path(__file__).resolve().parents[1]
MISSING = CALENDAR.day(5)
COHORT_ASSETS = ("cohort_users", "user_splits", "label_scores", "window_impressions", "sessions", "static_features",
                 "kpi_features", "sequence_tensors")


def _drop_day(source: Path, dt: int) -> int:
    """Remove every impression of day ``dt`` from the file (the dt field is the one after the swipe-down list)."""
    path = source / "impression_data.csv"
    header, *lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.rsplit('"', 1)[-1].split(",")[1] != str(dt)]
    path.write_text(header + "".join(kept))
    return len(lines) - len(kept)


def _run(source: Path, root: Path):
    """The data graph through Dagster, in process as the tests' runner does: (check results, the instance's
    latest metadata per partition of the asset ``raw_impressions`` and ``user_day_activity``, materialized
    partitions per asset)."""
    resources = resources_for(source, root)
    with dg.DagsterInstance.ephemeral() as instance:
        run_ids = run_steps(build_definitions(resources=resources), instance, data_graph_steps(CALENDAR), echo=lambda _: None)
        checks = [e.dagster_event.event_specific_data for r in run_ids
                  for e in instance.all_logs(r, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
        meta = {name: {r.asset_materialization.partition: r.asset_materialization.metadata
                       for r in instance.fetch_materializations(dg.AssetKey(name), limit=1000).records}
                for name in ("raw_impressions", "user_day_activity")}
        materialized = {name: instance.get_materialized_partitions(dg.AssetKey(name)) for name in COHORT_ASSETS}
    return checks, meta, materialized


@pytest.fixture(scope="module")
def one_day_missing(tmp_path_factory):
    root = tmp_path_factory.mktemp("one_day_missing")
    generate(root / "source", users=500, seed=7)
    assert _drop_day(root / "source", CALENDAR.dt(MISSING)) > 0
    return root, *_run(root / "source", root)


def test_a_missing_day_is_an_empty_partition_with_its_metadata(one_day_missing):
    root, checks, meta, _ = one_day_missing
    assert [(c.asset_key.to_user_string(), c.check_name) for c in checks if not c.passed] == []
    day = MISSING.isoformat()
    assert meta["raw_impressions"][day]["dagster/row_count"].value == 0
    assert meta["raw_impressions"][day]["pooled_ctr"].value is None  # no impression, no CTR
    assert meta["raw_impressions"][day]["actions_without_click"].value == 0
    assert meta["user_day_activity"][day]["dagster/row_count"].value == 0
    assert meta["raw_impressions"][CALENDAR.day(6).isoformat()]["dagster/row_count"].value > 0
    assert len(pd.read_parquet(root / "data" / "raw" / "impression_data" / f"day={day}" / "data.parquet")) == 0


def test_downstream_of_a_missing_day_everything_is_built(one_day_missing):
    root, _, _, materialized = one_day_missing
    labelled = {CALENDAR.day(d).isoformat() for d in range(1, 11)}
    assert {name: parts for name, parts in materialized.items()} == dict.fromkeys(COHORT_ASSETS, labelled)
    assert len(pd.read_parquet(root / "data" / "cohorts" / "cohort_users" / f"cohort={MISSING}")) == 0
    sessions = pd.read_parquet(root / "data" / "cohorts" / "sessions" / "cohort=2019-11-01")
    assert len(sessions) > 0 and CALENDAR.dt(MISSING) not in set(sessions["start_dt"])


@pytest.fixture(scope="module")
def header_only(tmp_path_factory):
    root = tmp_path_factory.mktemp("header_only")
    generate(root / "source", users=200, seed=8)
    path = root / "source" / "impression_data.csv"
    path.write_text(path.read_text().split("\n", 1)[0] + "\n")
    return root, *_run(root / "source", root)


def test_a_header_only_impression_file_builds_an_empty_graph(header_only):
    root, checks, meta, materialized = header_only
    assert [(c.asset_key.to_user_string(), c.check_name) for c in checks if not c.passed] == []
    assert {m["dagster/row_count"].value for m in meta["raw_impressions"].values()} == {0}
    assert len(meta["raw_impressions"]) == len(meta["user_day_activity"]) == 30
    assert all(len(parts) == 10 for parts in materialized.values())
    for table in ("cohort_users", "label_scores", "sessions", "kpi_features"):
        assert len(pd.read_parquet(root / "data" / "cohorts" / table)) == 0, table


def test_the_command_builds_the_data_graph_when_the_calendar_lies_past_every_row(tmp_path):
    """``churn-dagster materialize --data-only`` with the first day moved past all rows: every impression is
    quarantined (its impressTime is not on its dt's day any more), every day is empty, and the data graph is
    built all the same; only the quarantine-rate check warns."""
    generate(tmp_path / "source", users=150, seed=9)
    home = tmp_path / "dagster_home"
    shutil.copy(REPO / "dagster.yaml", home)
    env = {**os.environ, "DAGSTER_HOME": str(home), "CHURN_DUCKDB_MEMORY_LIMIT": "1GB",
           "CHURN_FIRST_DAY": "2019-12-01", "CHURN_LAST_DAY": "2019-12-30"}
    done = subprocess.run([sys.executable, "-m", "churn_dagster.cli", "materialize", "--data-only", "--source",
                           str(tmp_path / "source"), "--data-dir", str(tmp_path / "data")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("warning:")]
    assert warnings == ["warning: check failed: raw_impressions / quarantine_rate: 100.0000% of rows quarantined"]
    data = tmp_path / "data"
    assert len(list((data / "raw" / "impression_data").glob("day=2019-12-*/data.parquet"))) == 30
    assert len(pd.read_parquet(data / "raw" / "impression_data")) == 0
    assert len(list((data / "cohorts" / "kpi_features").glob("cohort=2019-12-*"))) == 10
    assert len(list((data / "tensors").glob("cohort=2019-12-*/users.parquet"))) == 10
