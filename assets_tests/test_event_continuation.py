"""Session continuation on an event log (``studies: [continuation]``): the examples and their labels by hand
(sessions by the 30-minute rule, the prefix and the user's history known at each event, censoring near the
log's end, the per-user cap), and the component trains both families per horizon on a generated clickstream."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from event_log_helpers import small_log_evidence

from bench.event_log_project import load, materialize, write_project
from churn_dagster.components.event_log_spec import InstancePaths
from churn_dagster.studies.continuation.ml.data import Prefixes
from churn_dagster.studies.continuation.sql.event_logs import (
    events_table_sql,
    examples_sql,
    feature_columns,
    prefix_layout,
    steps_sql,
)

M = 60_000
T0 = 1_709_280_000_000  # 2024-03-01 08:00 UTC
SPLIT = {"seed": "0", "train": 0.7, "validation": 0.15}


def _examples(tmp_path: Path, rows: list[tuple[str, int, str, float | None, str | None]], per_user: int = 20,
              session_id: bool = False, steps: bool = False) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "minute", "event_type", "value", "session_id"])
    frame["event_ms"] = T0 + frame.pop("minute") * M
    stamp = pd.to_datetime(frame["event_ms"], unit="ms")
    frame["local_day"], frame["local_hour"] = stamp.dt.date, stamp.dt.hour
    frame["file"], frame["line"] = "log.csv", range(2, 2 + len(frame))
    frame.to_parquet(tmp_path / "events.parquet", index=False)
    con = duckdb.connect()
    con.execute(events_table_sql(tmp_path / "events.parquet", date(2024, 3, 1), ["view", "click"], session_id, True,
                                 per_user), {"seed": SPLIT["seed"]})
    if steps:
        return con.execute(steps_sql(["view", "click"], True)).df()
    return con.execute(examples_sql(["view", "click"], True), SPLIT).df()


def test_examples_know_only_the_past_and_labels_the_session_end(tmp_path):
    examples = _examples(tmp_path, [
        ("a", 0, "view", None, None), ("a", 5, "click", 2.0, None), ("a", 25, "view", None, None),  # session 1: 0-25
        ("a", 60, "view", None, None), ("a", 62, "click", 1.0, None),                                # session 2: 60-62
        ("b", 0, "view", None, None),
        ("z", 300, "view", None, None),   # the log's last event: nothing within 60 minutes of it is an example
    ])
    a = examples[examples["user_id"] == "a"].reset_index(drop=True)
    assert a["request_ms"].tolist() == [T0 + m * M for m in (0, 5, 25, 60, 62)]
    assert a["event_idx"].tolist() == [1, 2, 3, 1, 2]
    assert a["elapsed_min"].tolist() == [0, 5, 25, 0, 2]
    assert a["gap_prev_min"].tolist()[1:3] == [5, 20] and pd.isna(a["gap_prev_min"][0]) and pd.isna(a["gap_prev_min"][3])
    assert a["n_click_so_far"].tolist() == [0, 1, 1, 0, 1] and a["value_so_far"].tolist() == [0, 2, 2, 0, 1]
    # The second session knows the first: one session of 25 minutes, 3 events, ended 35 minutes before.
    assert a["prior_sessions"].tolist() == [0, 0, 0, 1, 1] and a["prior_events"].tolist() == [0, 0, 0, 3, 3]
    assert a["prior_mean_session_min"].tolist()[3:] == [25, 25] and a["minutes_since_prev_session"].tolist()[3:] == [35, 35]
    # Session 1 ends at minute 25: from minute 0 it goes on 25 more minutes, from minute 5 20, from 25 none.
    assert a["continues_10min"].tolist() == [True, True, False, False, False]
    assert a["continues_20min"].tolist() == [True, True, False, False, False]
    assert a["continues_30min"].tolist() == [False] * 5
    assert set(examples["user_id"]) == {"a", "b"}  # z's event is within the censoring margin of the log's end
    assert set(examples.columns) >= set(feature_columns(["view", "click"], True)[0])


def test_the_lstm_reads_each_examples_session_so_far(tmp_path):
    # Interleaved platform sessions: s1 at minutes 0, 10, 20 and s2 at 5, 15; the steps keep each together.
    rows = [("a", 0, "view", None, "s1"), ("a", 5, "click", 3.0, "s2"), ("a", 10, "click", None, "s1"),
            ("a", 15, "view", None, "s2"), ("a", 20, "view", None, "s1"), ("z", 200, "view", None, "z")]
    examples = _examples(tmp_path, rows, session_id=True)
    steps = _examples(tmp_path, rows, session_id=True, steps=True)
    assert steps["step_no"].tolist() == [1, 2, 3, 4, 5] and steps["global_session_idx"].tolist() == [1, 1, 1, 2, 2]
    assert steps["event_idx"].tolist() == [1, 2, 3, 1, 2]
    assert steps["step_gap_min"].tolist() == [0, 10, 10, 0, 10] and steps["is_click"].tolist() == [0, 1, 0, 1, 0]
    assert steps["step_value"].tolist()[3] == pytest.approx(np.log(4.0))
    prefixes = Prefixes(steps, examples, max_steps=2, layout=prefix_layout(["view", "click"], True))
    # The example at minute 20 (third event of s1) reads its last two steps: minutes 10 and 20 of s1.
    k = int(np.flatnonzero(examples["request_ms"] == T0 + 20 * M)[0])
    assert (prefixes.start[k], prefixes.end[k]) == (1, 3)
    assert prefixes.steps[1:3, 1].tolist() == pytest.approx(np.log1p([10.0, 20.0]).tolist())
    k = int(np.flatnonzero(examples["request_ms"] == T0 + 15 * M)[0])
    assert (prefixes.start[k], prefixes.end[k]) == (3, 5)


def test_the_platform_session_id_and_the_cap(tmp_path):
    rows = [("a", m, "view", None, "s1" if m < 50 else "s2") for m in range(0, 100, 10)] + [("z", 400, "view", None, "s9")]
    examples = _examples(tmp_path, rows, per_user=4, session_id=True)
    assert len(examples) == 4  # ten events of a, at most four drawn
    again = _examples(tmp_path, rows, per_user=4, session_id=True)
    assert again["request_ms"].tolist() == examples["request_ms"].tolist()  # the same draw every time
    # The sessions are the platform's (s1: minutes 0-40, s2: 50-90), not the 30-minute rule's single session.
    by_minute = {int((r - T0) / M): idx for r, idx in zip(examples["request_ms"], examples["event_idx"])}
    assert all(idx == (m % 50) // 10 + 1 for m, idx in by_minute.items())


def _long_sessions(path: Path, users: int) -> Path:
    """A clickstream whose sessions last from a minute to over an hour: each user has a stamina (how long
    their sessions run) and clicks more the more stamina, so the past and the session so far say something."""
    rng = np.random.default_rng(5)
    rows = []
    for u in range(users):
        stamina = rng.gamma(1.5, 12.0)  # minutes, the user's typical session length
        for day in rng.choice(50, size=rng.integers(2, 8), replace=False):
            t = pd.Timestamp("2024-01-02 09:00") + pd.Timedelta(days=int(day), minutes=int(rng.integers(0, 600)))
            end = t + pd.Timedelta(minutes=float(rng.exponential(stamina)))
            while t <= end:
                action = "click" if rng.random() < min(0.9, stamina / 40) else "view"
                rows.append((f"V{u}", (t.isoformat() + "+01:00"), action, "", f"s{u}-{day}"))
                t += pd.Timedelta(seconds=float(rng.exponential(150)))
    pd.DataFrame(rows, columns=["visitor", "ts", "action", "price", "session"]).to_csv(path, index=False)
    return path


CLICKS = """\
type: churn_dagster.components.EventLogComponent
attributes:
  name: clicks
  source: {{paths: [{path}]}}
  mapping: {{user_id: visitor, event_time: ts, timezone: Europe/Berlin, event_type: action, value: price,
            session_id: session}}
  windows: {{start: "2024-01-01", end: "2024-02-29"}}
  studies: [continuation]
  continuation: {{max_examples_per_user: 10}}
  max_epochs: 3
"""


def test_the_component_trains_the_three_families_per_horizon(tmp_path, monkeypatch):
    small_log_evidence(monkeypatch)
    log = _long_sessions(tmp_path / "clicks.csv", users=1200)
    root, package = write_project(tmp_path, {"clicks": CLICKS.format(path=log)})
    defs = load(root, package)
    instance = dg.DagsterInstance.ephemeral()
    wanted = [["clicks", "events"], ["clicks", "continuation_examples"], ["clicks", "continuation_logreg"],
              ["clicks", "continuation_xgboost"], ["clicks", "continuation_lstm"]]
    result = materialize(defs, wanted, instance)
    assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
    folder = InstancePaths(os.environ["CHURN_DATA_DIR"], "clicks").root / "continuation"
    examples = pd.read_parquet(folder / "examples.parquet")
    assert examples.groupby("user_id").size().max() <= 10 and examples["continues_10min"].any()
    for family in ("logreg", "xgboost", "lstm"):
        metrics = json.loads((folder / "models" / family / "metrics.json").read_text())
        assert set(metrics["horizons"]) == {"10", "20", "30"}
        ten = metrics["horizons"]["10"]
        assert ten["skipped"] is None and 0.5 < ten["validation"]["roc_auc"] <= 1, family


@pytest.mark.parametrize("extra, expected", [
    ("  continuation: {max_examples_per_user: 5}\n", "continuation: given, but studies does not name continuation"),
    ("  studies: [continuation]\n  continuation: {max_examples_per_user: 0}\n",
     "continuation.max_examples_per_user: 0 is outside 1..100000"),
])
def test_a_continuation_that_cannot_work_is_one_line(tmp_path, extra, expected):
    from event_log_helpers import config_error

    log = tmp_path / "c.csv"
    log.write_text("visitor,ts,action,price,session\nv1,2024-01-02T10:00:00+01:00,view,,s1\n")
    base = CLICKS.split("  studies:")[0].format(path=log)
    message = config_error(tmp_path, "clicks", base + extra)
    assert expected in message and "\n" not in message, message
