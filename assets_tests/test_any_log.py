"""Any log, not only November 2019: 18 months with 26-week observation and label windows, where most cohort days
have no new user. Empty cohorts materialize empty with a note, training skips them, an empty scoring window
gives an empty score table, and nothing fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from churn_dagster.synth.generator import generate

HERE = Path(__file__).parent
LOG = {"CHURN_FIRST_DAY": "2018-06-01", "CHURN_LAST_DAY": "2019-11-30", "CHURN_OBSERVATION_DAYS": "182",
       "CHURN_LABEL_DAYS": "182", "CHURN_TRAINING_COHORTS": "400", "CHURN_DUCKDB_MEMORY_LIMIT": "1GB"}


@pytest.fixture(scope="module")
def long_log(tmp_path_factory):
    root = tmp_path_factory.mktemp("any_log")
    generate(root / "source", users=150, days=548, start_date=date(2018, 6, 1), seed=4)
    env = {**os.environ, **LOG, "DAGSTER_HOME": str(root)}
    done = subprocess.run([sys.executable, str(HERE / "any_log_run.py"), str(root / "source"), str(root)],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "data", json.loads(done.stdout.strip().splitlines()[-1])


def test_most_cohorts_are_empty_and_say_so(long_log):
    data, outcome = long_log
    sizes = {p.parent.name: len(pd.read_parquet(p)) for p in (data / "cohorts" / "cohort_users").glob("*/data.parquet")}
    assert len(sizes) == 548 - 182 - 182 + 1  # every labelled cohort partition exists
    empty = [k for k, n in sizes.items() if n == 0]
    assert len(empty) > len(sizes) / 2
    assert outcome["notes"] and "no user was first seen on" in outcome["notes"][0]
    assert empty[0].removeprefix("cohort=") in " ".join(outcome["notes"])


def test_nothing_fails_and_models_train_on_the_cohorts_with_users(long_log):
    data, outcome = long_log
    assert outcome["failed_checks"] == []
    metrics = json.loads((data / "models" / "xgboost_level" / f"cohort={outcome['last_labelled']}" / "metrics.json")
                         .read_text())
    users = {p.parent.name.removeprefix("cohort="): len(pd.read_parquet(p))
             for p in (data / "cohorts" / "cohort_users").glob("*/data.parquet")}
    assert metrics["cohorts"] == sorted(c for c in outcome["window"] if users[c] > 0)
    assert metrics["schemes"]["random"]["train_users"] > 50


def test_an_empty_scoring_window_gives_an_empty_score_table(long_log):
    data, _ = long_log
    (scores,) = (data / "scores").glob("window=*/churn_risk_scores.parquet")
    assert scores.parent.name == "window=2019-11-30"
    table = pd.read_parquet(scores)
    window = pd.read_parquet(next((data / "scoring" / "cohort_users").glob("*/data.parquet")))
    assert len(table) == len(window)
    assert {"user_id", "churn_probability", "predicted_level_name"} <= set(table.columns)
