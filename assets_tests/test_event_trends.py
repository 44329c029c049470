"""The engagement trends (DIGMN) on an event log (``studies: [trends]``): the labels, the median filter and the
first-period inputs by hand, and the component building the tables, the intents, the seven models for both
tasks and the report on a generated clickstream."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from event_log_helpers import config_error, generated_clicks, small_log_evidence

from bench.event_log_project import load, materialize, write_project
from churn_dagster.components.event_log_spec import InstancePaths
from churn_dagster.stages.cohorts.sql.labels import SplitSettings, split_of
from churn_dagster.stages.events.load import load_events
from churn_dagster.stages.events.sql import cohorts as cohort_sql
from churn_dagster.stages.events.sql.mapping import EventMapping
from churn_dagster.stages.events.sql.sources import FileSource
from churn_dagster.studies.trends.event_log_tables import build_trend_tables
from churn_dagster.studies.trends.ml.data import load_event_log_trend_data
from churn_dagster.studies.trends.ml.hyperparameters import TREND_MODELS
from churn_dagster.studies.trends.ml.intents import fit_intents
from churn_dagster.studies.trends.sql.event_logs import TrendWindows

MAPPING = EventMapping("user", "ts", event_type="type")
# Periods of 3 + 3 days from each user's first day; the log's last day is 8 January.
LOG = """user,ts,type
e,2023-12-31 10:00:00,view
e,2024-01-02 10:00:00,view
a,2024-01-01 10:00:00,view
a,2024-01-01 10:10:00,like
a,2024-01-01 11:00:00,view
a,2024-01-03 23:50:00,view
a,2024-01-04 00:10:00,view
a,2024-01-05 12:00:00,view
b,2024-01-02 09:00:00,view
b,2024-01-05 09:00:00,view
b,2024-01-06 09:00:00,view
b,2024-01-07 09:00:00,like
c,2024-01-02 08:00:00,view
f,2024-01-02 08:00:00,view
f,2024-01-02 09:00:00,view
f,2024-01-02 10:00:00,view
g,2024-01-02 08:00:00,view
g,2024-01-02 09:00:00,view
g,2024-01-03 08:00:00,view
d,2024-01-05 10:00:00,view
d,2024-01-08 10:00:00,view
"""


def _tables(con, tmp_path: Path, median_filter: bool = True) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "log.csv").write_text(LOG)
    events = tmp_path / "events.parquet"
    load_events(con, FileSource((tmp_path / "log.csv",)), MAPPING, events, tmp_path / "q.parquet")
    w = TrendWindows(date(2024, 1, 1), 3, 3, "day", median_filter)
    build_trend_tables(con, events, w, MAPPING, date(2024, 1, 8), SplitSettings(), tmp_path / "trends")
    return tmp_path / "trends"


def test_labels_and_the_median_filter_by_hand(con, tmp_path):
    folder = _tables(con, tmp_path)
    users = pd.read_parquet(folder / "users.parquet").set_index("user_id")
    # e appeared before the start; d's second period (6-8 Jan... 10 Jan) ends after the log.
    assert users.index.tolist() == ["a", "b", "c", "f", "g"]
    got = users[["first_active_days", "second_active_days", "first_sessions", "second_sessions", "day_trend",
                 "session_trend"]]
    # a: days {1, 3} then {4, 5}: same; sessions 10:00-10:10, 11:00, 3 Jan 23:50 (running to 00:10, counted in
    # period 1 where it starts) then 5 Jan: 3 against 1, a decrease.
    assert got.loc["a"].tolist() == [2, 2, 3, 1, 1, 1]
    assert got.loc["b"].tolist() == [1, 3, 1, 3, 2, 0]
    assert got.loc["c"].tolist() == [1, 0, 1, 0, 0, 1]
    assert got.loc["f"].tolist() == [1, 0, 3, 0, 0, 1]
    assert got.loc["g"].tolist() == [2, 0, 3, 0, 0, 1]
    # Cohort 2 Jan (b, c, f, g): first sessions 1, 1, 3, 3, median 2: b and c are not in the task.
    assert users["first_sessions_median"].tolist() == [3.0, 2.0, 2.0, 2.0, 2.0]
    assert users["kept_by_filter"].tolist() == [True, False, False, True, True]
    assert all(users.loc[u, "split"] == split_of(u, SplitSettings()) for u in users.index)
    unfiltered = pd.read_parquet(_tables(con, tmp_path / "all", median_filter=False) / "users.parquet")
    assert unfiltered["kept_by_filter"].all()


def test_inputs_read_the_first_period_only(con, tmp_path):
    folder = _tables(con, tmp_path)
    sessions = pd.read_parquet(folder / "sessions.parquet")
    a = sessions[sessions["user_id"] == "a"]
    # The session of 3 Jan 23:50 ends with its last first-period event: the 00:10 view is period 2's.
    assert a[["global_session_idx", "day_num", "hour_of_day", "n_view", "n_like"]].values.tolist() == [
        [1, 1, 10, 1, 1], [2, 1, 11, 1, 0], [3, 3, 23, 1, 0]]
    assert a["duration_min"].tolist() == [10.0, 0.0, 0.0]
    assert a["gap_min"].tolist() == [-1.0, 50.0, (2 * 24 * 60) + 12 * 60 + 50]
    daily = pd.read_parquet(folder / "daily.parquet")
    assert len(daily) == 5 * 3
    assert daily[daily["user_id"] == "a"][["day_num", "n_view", "n_like"]].values.tolist() == [
        [1, 2, 1], [2, 0, 0], [3, 1, 0]]
    macro = pd.read_parquet(folder / "macro.parquet").set_index("user_id")
    assert macro.loc["a", "events_total"] == 4 and macro.loc["b", "events_total"] == 1
    assert json.loads((folder / "columns.json").read_text())["event_columns"] == ["n_view", "n_like"]


def test_types_beyond_the_cap_are_counted_as_other(con, tmp_path, monkeypatch):
    monkeypatch.setattr(cohort_sql, "MAX_TYPE_FEATURES", 1)
    folder = _tables(con, tmp_path)
    sessions = pd.read_parquet(folder / "sessions.parquet")
    first = sessions[sessions["user_id"] == "a"].iloc[0]
    assert (first["n_view"], first["n_other"]) == (1, 1)
    assert json.loads((folder / "columns.json").read_text())["event_columns"] == ["n_view", "n_other"]


def test_the_tables_become_the_models_arrays(con, tmp_path):
    folder = _tables(con, tmp_path)
    intents = fit_intents(np.array([[1.0, 1.0], [3.0, 0.0], [0.0, 2.0], [2.0, 1.0]]), ["n_view", "n_like"],
                          k_min=2, k_max=2)
    data = load_event_log_trend_data(folder, intents)
    assert data.users["user_id"].tolist() == ["a", "f", "g"]  # the kept users, by cohort then user
    assert data.daily.shape == (3, 3, 2) and data.daily[0, 0].tolist() == [2.0, 1.0]
    assert data.offsets.tolist() == [0, 3, 6, 9]
    assert data.labels("session").tolist() == [1, 1, 1] and data.labels("day").tolist() == [1, 0, 0]
    assert "events_total" in data.macro.columns and "user_id" not in data.macro.columns


CLICKS = """\
type: churn_dagster.components.EventLogComponent
attributes:
  name: clicks
  source: {{paths: [{path}]}}
  mapping: {{user_id: visitor, event_time: ts, timezone: Europe/Berlin, event_type: action, value: price}}
  windows: {{start: "2024-01-01", end: "2024-03-30"}}
  studies: [trends]
  max_epochs: 1
"""


@pytest.fixture(scope="module")
def clicks(tmp_path_factory) -> Path:
    return generated_clicks(tmp_path_factory, users=1500, days=90)


def test_the_component_builds_the_trend_study(tmp_path, clicks, monkeypatch):
    small_log_evidence(monkeypatch)
    root, package = write_project(tmp_path, {"clicks": CLICKS.format(path=clicks)})
    defs = load(root, package)
    models = [f"trend_{m}_{t}" for m in TREND_MODELS for t in ("day", "session")]
    wanted = [["clicks", "events"], ["clicks", "trend_data"], ["clicks", "trend_intents"],
              *(["clicks", m] for m in models), ["clicks", "trend_report"]]
    config = {"ops": {f"clicks__{m}": {"config": {"seeds": [0]}} for m in models}}
    result = materialize(defs, wanted, dg.DagsterInstance.ephemeral(), run_config=config)
    assert result.success
    checks = {(c.asset_key.to_user_string(), c.check_name): c.passed for c in result.get_asset_check_evaluations()}
    blocking = [k for k in checks if k[1] != "beats_chance"]
    assert all(checks[k] for k in blocking), {k: checks[k] for k in blocking}
    assert len([k for k in checks if k[1] == "model_sane"]) == 14
    folder = InstancePaths(os.environ["CHURN_DATA_DIR"], "clicks").root / "trends"
    summary = json.loads((folder / "models" / "digmn_session" / "summary.json").read_text())
    assert summary["summary"]["seeds"] == 1 and 0 <= summary["summary"]["test_mean"] <= 1
    report = pd.read_csv(folder / "report" / "trend_comparison.csv")
    assert report["day macro F1 (ours)"].notna().all() and report["session AUROC (ours)"].notna().all()


@pytest.mark.parametrize("extra, expected", [
    ("  trends: {first_period_days: 7}\n", "trends: given, but studies does not name trends"),
    ("  studies: [trends]\n  trends: {second_period_days: 0}\n", "trends.second_period_days: 0 is outside 1..366"),
])
def test_a_trend_study_that_cannot_work_is_one_line(tmp_path, clicks, extra, expected):
    message = config_error(tmp_path, "clicks", CLICKS.replace("  studies: [trends]\n", "").format(path=clicks) + extra)
    assert expected in message and "\n" not in message, message


def test_trends_need_event_types(tmp_path):
    log = tmp_path / "orders.csv"
    log.write_text("customer,day\nc1,2024-01-01\nc2,2024-01-02\n")
    yaml = (f"type: churn_dagster.components.EventLogComponent\nattributes:\n  name: orders\n  source: {{paths: [{log}]}}\n"
            "  mapping: {user_id: customer, event_time: day}\n  windows: {start: '2024-01-01'}\n  studies: [trends]\n")
    message = config_error(tmp_path, "orders", yaml)
    assert "studies: trends needs event types" in message and "\n" not in message, message
    one_type = tmp_path / "one.csv"
    one_type.write_text("customer,day,kind\nc1,2024-01-01,buy\nc2,2024-01-02,buy\n")
    message = config_error(tmp_path / "b", "orders", yaml.replace(str(log), str(one_type)).replace(
        "event_time: day}", "event_time: day, event_type: kind}"))
    assert "mapping.event_type (kind) holds 1 type(s)" in message and "\n" not in message, message


def test_a_log_too_small_for_the_trend_task_says_so_in_one_line(tmp_path):
    from churn_dagster.components.event_log_trends import MIN_INTENT_SESSIONS
    from churn_dagster.errors import UserError

    # Six users, two event types, periods of 3 + 3 days: too few sessions to mine intents from.
    log = tmp_path / "tiny.csv"
    log.write_text("user,ts,type\n" + "".join(f"u{k},2024-01-0{1 + k % 2} 10:00:00,{('view', 'like')[k % 2]}\n"
                                              for k in range(6)) + "u0,2024-01-09 10:00:00,view\n")
    yaml = (f"type: churn_dagster.components.EventLogComponent\nattributes:\n  name: tiny\n  source: {{paths: [{log}]}}\n"
            "  mapping: {user_id: user, event_time: ts, event_type: type}\n"
            "  windows: {start: '2024-01-01', observation_days: 3, label_days: 3}\n  studies: [trends]\n")
    root, package = write_project(tmp_path, {"tiny": yaml})
    defs = load(root, package)
    with pytest.raises(Exception) as info:
        materialize(defs, [["tiny", "events"], ["tiny", "trend_data"], ["tiny", "trend_intents"]],
                    dg.DagsterInstance.ephemeral())
    chain = info.value
    while chain is not None and not isinstance(chain, UserError):
        chain = chain.__cause__ or chain.__context__
    assert chain is not None and "too few to mine intents" in str(chain) and "\n" not in str(chain), info.value
    assert f"at least {MIN_INTENT_SESSIONS}" in str(chain)
