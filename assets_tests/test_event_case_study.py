"""The case study on an event log (``studies: [case_study]``): features from the feature days only, the
response rate over the target days against a threshold fit on training users, by hand; and the component
builds the data and the four families on a generated clickstream, registered in MLflow."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from event_log_helpers import config_error, generated_clicks, small_log_evidence

from bench.event_log_project import load, materialize, write_project
from churn_dagster.components.event_log_spec import InstancePaths
from churn_dagster.stages.cohorts.sql.labels import SplitSettings, split_of
from churn_dagster.studies.case_study.sql.event_logs import CaseStudyWindows, build_tables


def _events(path: Path, rows: list[tuple[str, str, str, float | None]]) -> Path:
    frame = pd.DataFrame(rows, columns=["user_id", "local_day", "event_type", "value"])
    frame["local_day"] = pd.to_datetime(frame["local_day"]).dt.date
    frame.to_parquet(path, index=False)
    return path


def test_features_from_the_feature_days_and_the_rate_against_the_training_mean(con, tmp_path):
    # Feature days 1-2 March, target days 3-5 March: exposures are views, responses clicks and buys.
    w = CaseStudyWindows(date(2024, 3, 1), ("view",), ("click", "buy"), feature_days=2, target_days=3)
    events = _events(tmp_path / "events.parquet", [
        ("a", "2024-03-01", "view", None), ("a", "2024-03-02", "click", 2.5),   # features: 2 events, 2 days
        ("a", "2024-03-03", "view", None), ("a", "2024-03-03", "view", None), ("a", "2024-03-04", "click", None),
        ("b", "2024-03-02", "view", 1.0),                                        # rate 2/2 = 1
        ("b", "2024-03-05", "view", None), ("b", "2024-03-05", "buy", 9.0), ("b", "2024-03-05", "view", None),
        ("b", "2024-03-05", "click", None),
        ("c", "2024-03-01", "view", None),                                       # no exposure later: inactive
        ("d", "2024-03-03", "view", None),                                       # first seen later: not a user here
        ("a", "2024-03-06", "click", None),                                      # after the target days
    ])
    split = SplitSettings(seed=0, train_fraction=1.0, validation_fraction=0.0)  # every user trains
    features, labels, threshold = build_tables(con, events, w, ["view", "click", "buy"], True, split, tmp_path / "out")
    assert features["user_id"].tolist() == ["a", "b", "c"]
    a = features.set_index("user_id").loc["a"]
    assert (a["events"], a["active_days"], a["value_sum"], a["n_view"], a["n_click"], a["n_buy"]) == (2, 2, 2.5, 1, 1, 0)
    labels = labels.set_index("user_id")
    # a: 1 click over 2 views = 0.5; b: (1 buy + 1 click) over 2 views = 1.0; c: no view, no rate.
    assert labels["rate"].tolist()[:2] == [0.5, 1.0] and pd.isna(labels.loc["c", "rate"])
    assert threshold["threshold"] == 0.75 and threshold["fitted_on_users"] == 2
    assert labels["active"].tolist() == [0, 1, 0]
    saved = json.loads((tmp_path / "out" / "threshold.json").read_text())
    assert saved["target_days"] == ["2024-03-03", "2024-03-05"]
    assert pd.read_parquet(tmp_path / "out" / "labels.parquet")["active"].tolist() == [0, 1, 0]


def test_the_threshold_is_fit_on_training_users_only(con, tmp_path):
    w = CaseStudyWindows(date(2024, 3, 1), ("*",), ("click",), feature_days=1, target_days=1)
    users = [f"u{k}" for k in range(40)]
    split = SplitSettings(seed=3, train_fraction=0.5, validation_fraction=0.25)
    rows = [(u, "2024-03-01", "view", None) for u in users]
    # Target day: training users click on one of their two events, the others on both.
    for u in users:
        trains = split_of(u, split) == "train"
        rows += [(u, "2024-03-02", "click", None), (u, "2024-03-02", "view" if trains else "click", None)]
    _, labels, threshold = build_tables(con, _events(tmp_path / "e.parquet", rows), w, ["view", "click"], False,
                                        split, tmp_path / "out")
    assert threshold["threshold"] == 0.5  # the others' rate of 1.0 never enters it
    assert (labels["split"] == labels["user_id"].map(lambda u: split_of(u, split))).all()
    assert labels.loc[labels["split"] != "train", "active"].eq(1).all()


CLICKS = """\
type: churn_dagster.components.EventLogComponent
attributes:
  name: clicks
  source: {{paths: [{path}]}}
  mapping: {{user_id: visitor, event_time: ts, timezone: Europe/Berlin, event_type: action, value: price}}
  windows: {{start: "2024-01-01", end: "2024-04-29"}}
  studies: [case_study]
  case_study: {{exposure: [view], response: [click, cart, purchase], feature_days: 14, target_days: 28}}
"""


@pytest.fixture(scope="module")
def clicks(tmp_path_factory) -> Path:
    return generated_clicks(tmp_path_factory, users=3000, days=60)


def test_the_component_builds_the_case_study_and_its_four_families(tmp_path, clicks, monkeypatch):
    small_log_evidence(monkeypatch)
    root, package = write_project(tmp_path, {"clicks": CLICKS.format(path=clicks)})
    defs = load(root, package)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "clicks/cohorts" not in keys  # only the study asked for
    families = ("svm", "naive_bayes", "decision_tree", "mlp")
    instance = dg.DagsterInstance.ephemeral()
    wanted = [["clicks", "events"], ["clicks", "case_study_data"], *(["clicks", f"case_study_{f}"] for f in families)]
    result = materialize(defs, wanted, instance)
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    folder = InstancePaths(os.environ["CHURN_DATA_DIR"], "clicks").root / "case_study"
    features = pd.read_parquet(folder / "features.parquet")
    assert {"n_view", "n_click", "events", "active_days", "value_sum"} <= set(features.columns)
    for family in families:
        metrics = json.loads((folder / "models" / family / "metrics.json").read_text())
        assert set(metrics["variants"]) == {"plain", "upsampled"}
        assert 0.5 < metrics["variants"]["plain"]["validation"]["roc_auc"] <= 1, family
        assert metrics["registered"]["plain"]["name"] == f"clicks_case_study_{family}"


@pytest.mark.parametrize("extra, expected", [
    ("  studies: [case_study]\n", "case_study: missing; studies names case_study"),
    ("  studies: [case_study]\n  case_study: {response: [tap]}\n",
     "case_study.response: event type 'tap' does not occur in column 'action'"),
    ("  case_study: {response: [click]}\n", "case_study: given, but studies does not name case_study"),
    ("  studies: [case_study]\n  case_study: {response: [click], target_days: 0}\n",
     "case_study.target_days: 0 is outside 1..366"),
    ("  studies: [case_study]\n  case_study: {response: [click]}\n  scores_table: {uri: 'postgresql://x'}\n",
     "scores_table: the churn study writes the scores"),
    ("  studies: []\n", "studies: name at least one of churn, case_study, continuation"),
])
def test_a_case_study_that_cannot_work_is_one_line(tmp_path, clicks, extra, expected):
    base = CLICKS.replace("  studies: [case_study]\n", "").split("  case_study:")[0]
    message = config_error(tmp_path, "clicks", base.format(path=clicks) + extra)
    assert expected in message and "\n" not in message, message
