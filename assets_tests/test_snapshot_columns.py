"""No column measured after the log reaches a feature unless the leakage setting says so.

Each column of the three demographic snapshots (user, card, creator; taken on 1 Dec 2019) is perturbed in turn
in the raw table, and every feature table of every task family is rebuilt from it: the churn models' static and
KPI features, the trend models' period-1 inputs (macro features, sessions, session events), the case study's
features and the continuation requests. The columns that change a feature are enumerated; the test fails on a
column that reaches a feature without being classified in ``churn_dagster/domain/snapshots.py``, on a leaky
one that reaches a feature with ``use_leaky_columns`` off, and on a snapshot column nobody classified at all.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from conftest import CALENDAR
from pipeline_helpers import ingest_folder

from churn_dagster.domain import snapshots
from churn_dagster.stages.cohorts.sql import cohorts
from churn_dagster.stages.features.sql import features, sessions, window
from churn_dagster.storage.lake import Lake
from churn_dagster.studies.case_study.sql import data as case_study
from churn_dagster.studies.continuation.sql import examples as continuation
from churn_dagster.studies.trends.sql import inputs as trend_inputs
from churn_dagster.studies.trends.sql.trends import TrendSettings
from churn_dagster.synth.generator import generate

COHORTS = [CALENDAR.day(1), CALENDAR.day(2)]
KEYS = {c.column for c in snapshots.SNAPSHOT_COLUMNS if c.why.startswith("an identifier")}
BOOKKEEPING = {"source_line"}  # where a raw row came from, not a value of the snapshot


def _build(con, lake: Lake, leaky: bool) -> dict[str, pd.DataFrame]:
    """Every feature table of every task family for the two cohorts, read back sorted."""
    features.build_static_features(con, lake, CALENDAR, COHORTS, leaky)
    features.build_kpi_features(con, lake, CALENDAR, COHORTS, 31, leaky, True)
    trend_inputs.build_trend_inputs(con, lake, CALENDAR, TrendSettings(14, 14), COHORTS, 30.0, 31, leaky, True)
    case_study.build_features(con, lake, CALENDAR, case_study.Windows(10, 20), leaky)
    continuation.build_requests(con, lake, CALENDAR, COHORTS, 30.0)
    tables = {"static_features": lake, "kpi_features": lake, "sessions": lake.trend_inputs(),
              "session_events": lake.trend_inputs(), "continuation_requests": lake}
    tables["trend_macro"] = lake.trend_inputs()
    found = {}
    for name, area in tables.items():
        stem = "kpi_features" if name == "trend_macro" else name
        frame = pd.concat([pd.read_parquet(area.cohort(stem, c)) for c in COHORTS], ignore_index=True)
        found[name] = frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)
    found["case_study_features"] = pd.read_parquet(case_study.features_path(lake)).sort_values("user_id",
                                                                                           ignore_index=True)
    return found


def _changed(before: dict[str, pd.DataFrame], after: dict[str, pd.DataFrame]) -> set[str]:
    """``table.column`` of every feature column whose values differ."""
    out = set()
    for name, frame in before.items():
        other = after[name]
        if list(frame.columns) != list(other.columns) or len(frame) != len(other):
            out.add(f"{name}.<shape>")
            continue
        out |= {f"{name}.{c}" for c in frame.columns if not frame[c].equals(other[c])}
    return out


def _perturb(con, path, column: str, dtype: str) -> None:
    """Every value of ``column`` changed: numbers moved and scaled, strings swapped with missing ones."""
    expr = (f"CASE WHEN {column} IS NULL THEN 'zz' END" if dtype == "VARCHAR"
            else f"(coalesce({column}, 0) * 3 + 7)::{dtype}")
    con.execute(f"COPY (SELECT * REPLACE ({expr} AS {column}) FROM read_parquet('{path}')) TO '{path}' (FORMAT parquet)")


@pytest.fixture(scope="module")
def reach(tmp_path_factory):
    """(setting, snapshot column) -> the feature columns it changes, for both settings of the leakage switch."""
    from churn_dagster.storage.duck import DuckSettings, connect

    root = tmp_path_factory.mktemp("snapshots")
    generate(root / "source", users=300, seed=3)
    lake = Lake(root / "lake")
    con = connect(DuckSettings(memory_limit="1GB", threads=2, temp_directory=root / "tmp"))
    ingest_folder(con, root / "source", lake)
    for d in range(1, CALENDAR.num_days + 1):
        cohorts.build_user_day_activity(con, lake, CALENDAR.day(d))
    cohorts.build_cohort_users(con, lake, CALENDAR, COHORTS)
    window.build_window_impressions(con, lake, CALENDAR, COHORTS)
    sessions.build_sessions(con, lake, CALENDAR, COHORTS, 30.0)  # read by the static features, no snapshot read
    found, schemas = {}, {}
    for spec in snapshots.SNAPSHOT_FILES:
        path = lake.raw_snapshot(spec.stem)
        described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
        schemas[spec.stem] = {name: dtype for name, dtype, *_ in described if name not in BOOKKEEPING}
    for leaky in (False, True):
        base = _build(con, lake, leaky)
        for spec in snapshots.SNAPSHOT_FILES:
            path = lake.raw_snapshot(spec.stem)
            kept = path.with_suffix(".kept")
            shutil.copyfile(path, kept)
            for column, dtype in schemas[spec.stem].items():
                if column in KEYS:
                    continue
                _perturb(con, path, column, dtype)
                found[(leaky, spec.stem, column)] = _changed(base, _build(con, lake, leaky))
                shutil.copyfile(kept, path)
    con.close()
    return found, schemas


def test_every_snapshot_column_is_classified(reach):
    _, schemas = reach
    listed = {(c.file, c.column) for c in snapshots.SNAPSHOT_COLUMNS}
    assert {(file, column) for file, columns in schemas.items() for column in columns} == listed


def test_no_leaky_column_reaches_a_feature_with_the_setting_off(reach):
    found, _ = reach
    reaching = {(file, column): changed for (leaky, file, column), changed in found.items() if not leaky and changed}
    leaky = {(c.file, c.column) for c in snapshots.LEAKY_COLUMNS}
    assert not set(reaching) & leaky, {k: v for k, v in reaching.items() if k in leaky}
    # The columns that do reach a feature are all classified as measured as they were before the log ended, and
    # the test can see them: gender, age and registration months, and the cards' type, publication and category.
    assert {("user_demographics", "gender"), ("user_demographics", "age"),
            ("user_demographics", "registered_month_cnt"), ("mlog_demographics", "type"),
            ("mlog_demographics", "publish_time"), ("mlog_demographics", "content_id")} <= set(reaching)


def test_with_the_setting_on_each_leaky_column_reaches_exactly_its_named_features(reach):
    found, _ = reach
    for feature, (file, column) in snapshots.LEAKY_FEATURES.items():
        changed = found[(True, file, column)]
        assert changed and {c.split(".", 1)[1] for c in changed} == {feature}, (file, column, changed)
    named = set(snapshots.LEAKY_FEATURES.values())
    for c in snapshots.LEAKY_COLUMNS:
        if (c.file, c.column) not in named:  # levels, the creators' own follows: never a feature
            assert found[(True, c.file, c.column)] == set(), c
