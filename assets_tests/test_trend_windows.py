"""No input of a trend model reads a day of the second trend period, whatever the windows.

Where the first trend period is shorter than the observation window (a 21-day log: 10 + 10 trend days against
14 observation days; or CHURN_OBSERVATION_DAYS=21 on the 30-day log: 14 + 14 against 21), the trend labels
describe days the churn tables of the observation window read. Each case builds the data graph and the trend
data of a synthetic log through Dagster, in a fresh process (the windows are read when the code location
loads), twice: as generated, and with every event after period 1 of the last trend partition changed (times,
clicks, likes, view times, swipe-down lists, content stats, and a new active day for every user of its trend
cohorts). The models' inputs (daily sequences, macro features, session behaviour, intents) must come out
bit-identical, while the labels change.

The user split is a seeded hash of the user id, so it does not move either; the changes also keep each user's
days with activity in the churn label periods as they were, so that the churn labels the test compares stay put.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.synth.generator import generate

HERE = Path(__file__).parent
FIRST_DAY = date(2019, 11, 1)
SHANGHAI = timezone(timedelta(hours=8))
DAY_MS = 86_400_000
CASES = {  # the environment, the days of the log, and the windows the settings must give
    "21-day log": ({"CHURN_LAST_DAY": "2019-11-21"}, 21,
                   {"observation_days": 14, "first_days": 10, "second_days": 10, "partition": "2019-11-01"}),
    "21 observation days": ({"CHURN_OBSERVATION_DAYS": "21"}, 30,
                            {"observation_days": 21, "first_days": 14, "second_days": 14, "partition": "2019-11-03"}),
}
INPUTS = ("daily", "macro", "macro_columns", "offsets", "behaviour", "intents", "topics", "user_id", "split")


def _dt(day: str) -> int:
    return (date.fromisoformat(day) - FIRST_DAY).days + 1


def _midnight_ms(dt: int) -> int:
    return int(datetime.combine(FIRST_DAY + timedelta(days=dt - 1), datetime.min.time(), SHANGHAI).timestamp()) * 1000


def _rewrite(path: Path, out: Path, change) -> None:
    """Copy a source file line by line; ``change(fields)`` returns the new line, or None to keep it as written."""
    lines = path.read_text().splitlines()
    kept = [lines[0]]
    for line in lines[1:]:
        fields = next(csv.reader([line]))
        new = change(fields)
        kept.extend(new if isinstance(new, list) else [line if new is None else new])
    out.write_text("\n".join(kept) + "\n")


def change_after(source: Path, out: Path, cut: int, members_until: int) -> None:
    """``source`` with every event of day ``cut`` and later changed: each impression moved 90 minutes later
    within its day, its click flipped (a click liked, with a view time; no swipe-down list), the content
    stats raised, and one more impression on day ``cut`` for every user first seen by day ``members_until``."""
    out.mkdir(parents=True)
    for spec in fmt.ALL_FILES:
        (out / f"{spec.stem}.csv").write_bytes((source / f"{spec.stem}.csv").read_bytes())
    header = fmt.IMPRESSIONS.header
    col = {name: header.index(name) for name in header}
    first_seen: dict[str, tuple[int, str]] = {}
    for fields in csv.reader((source / "impression_data.csv").read_text().splitlines()[1:]):
        user, dt = fields[col["userId"]], int(fields[col["dt"]])
        first_seen[user] = min(first_seen.get(user, (dt, fields[col["mlogId"]])), (dt, fields[col["mlogId"]]))

    def impression(fields):
        dt = int(fields[col["dt"]])
        if dt < cut:
            return None
        midnight = _midnight_ms(dt)
        fields[col["impressTime"]] = str(midnight + (int(fields[col["impressTime"]]) - midnight + 5_400_000) % DAY_MS)
        clicked = fields[col["isClick"]] == "0"
        for flag in ("isComment", "isIntoPersonalHomepage", "isShare", "isViewComment"):
            fields[col[flag]] = "0"
        fields[col["isClick"]], fields[col["isLike"]] = ("1", "1") if clicked else ("0", "0")
        fields[col["mlogViewTime"]] = "7.5" if clicked else "NA"
        fields[col["detailMlogInfoList"]] = "NA"
        return ",".join(fields)

    _rewrite(source / "impression_data.csv", out / "impression_data.csv", impression)
    extra = []
    for user, (dt, card) in sorted(first_seen.items()):
        if dt <= members_until:
            row = dict.fromkeys(header, "0") | {"detailMlogInfoList": "NA", "dt": str(cut), "mlogId": card,
                                                "impressTime": str(_midnight_ms(cut) + 43_207_000),
                                                "mlogViewTime": "NA", "userId": user}
            extra.append(",".join(row[name] for name in header))
    with (out / "impression_data.csv").open("a") as f:
        f.write("\n".join(extra) + "\n")

    def card_stats(fields):
        if int(fields[1]) < cut:
            return None
        fields[2], fields[3] = str(int(fields[2]) + 3), str(int(fields[3]) + 1)
        return ",".join(fields)

    def creator_stats(fields):
        if int(fields[1]) < cut:
            return None
        return f'"{fields[0]}",{fields[1]},{int(fields[2]) + 1}'

    _rewrite(source / "mlog_stats.csv", out / "mlog_stats.csv", card_stats)
    _rewrite(source / "creator_stats.csv", out / "creator_stats.csv", creator_stats)


def _run(source: Path, root: Path, environ: dict) -> tuple[dict, dict]:
    root.mkdir(parents=True)
    env = {**os.environ, **environ, "DAGSTER_HOME": str(root)}
    done = subprocess.run([sys.executable, str(HERE / "trend_window_run.py"), str(source), str(root),
                           str(root / "inputs.npz")], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(root / "inputs.npz") as saved:
        arrays = {k: saved[k] for k in saved.files}
    return json.loads(done.stdout.strip().splitlines()[-1]), arrays


@pytest.fixture(scope="module", params=list(CASES))
def twice(request, tmp_path_factory):
    environ, days, _ = CASES[request.param]
    root = tmp_path_factory.mktemp("trend_windows")
    generate(root / "source", users=2000, days=days, seed=11)
    outcome, before = _run(root / "source", root / "as_generated", environ)
    partition, first_cohort = (_dt(outcome["partition"]), _dt(outcome["cohorts"][0]))
    cut = partition + outcome["first_days"]
    assert cut < first_cohort + outcome["observation_days"]  # the new active day is in no churn label period
    change_after(root / "source", root / "changed", cut=cut, members_until=partition)
    outcome_changed, after = _run(root / "changed", root / "as_changed", environ)
    return request.param, outcome, before, outcome_changed, after, root


def test_the_windows_and_the_days_each_trend_input_declares(twice):
    case, outcome, _, changed, _, _ = twice
    expected = CASES[case][2]
    assert {k: outcome[k] for k in expected} == expected
    start = date.fromisoformat(expected["partition"])
    period_one = [(start + timedelta(days=k)).isoformat() for k in range(expected["first_days"])]
    assert outcome["declared"] == dict.fromkeys(outcome["declared"], period_one) and len(outcome["declared"]) == 7
    assert outcome["failed_checks"] == changed["failed_checks"] == []


def test_no_trend_input_reads_a_day_of_the_second_period(twice):
    _, outcome, before, _, after, _ = twice
    assert len(before["user_id"]) > 50
    for name in INPUTS:
        assert before[name].dtype == after[name].dtype and before[name].shape == after[name].shape, name
        assert before[name].tobytes() == after[name].tobytes(), name


def test_the_labels_and_the_observation_window_see_the_change(twice):
    """The second period did change: the labels describe it, and so do the churn tables of the observation
    window, which the trend models no longer read."""
    _, outcome, before, _, after, root = twice
    assert (before["second_active_days"] != after["second_active_days"]).any()
    assert (before["second_sessions"] != after["second_sessions"]).any()
    assert (before["day_trend"] != after["day_trend"]).any()
    kpi = [pd.read_parquet(root / run / "data" / "cohorts" / "kpi_features" / f"cohort={outcome['partition']}"
                           / "data.parquet")
           for run in ("as_generated", "as_changed")]
    assert not kpi[0].equals(kpi[1])
