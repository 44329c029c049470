"""``preset: ncm``: the NetEase files, or the synthetic twin written in their format, through the event-log
component with one line of YAML instead of a mapping; and the two mapping features the preset is made of,
which any log can use: event types from 0/1 response columns (``flags``) and the log's own spellings of a
missing value (``null_values``)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from conftest import Imp, tid
from event_log_helpers import config_error

from bench.event_log_project import load, materialize, write_project
from churn_dagster.components.event_log_spec import InstancePaths
from churn_dagster.domain import ncm_format as fmt
from churn_dagster.synth.generator import generate

PRESET = """\
type: churn_dagster.components.EventLogComponent
attributes:
  name: ncm
  preset: ncm
  source: {{paths: [{folder}]}}
  max_epochs: 1
"""


def _folder(tmp_path: Path, impressions: list[str]) -> Path:
    folder = tmp_path / "source"
    folder.mkdir()
    (folder / "impression_data.csv").write_text("\n".join([",".join(fmt.IMPRESSIONS.header), *impressions]) + "\n")
    users = sorted({line.split(",")[-1] for line in impressions})
    (folder / "user_demographics.csv").write_text(
        "userId,province,age,gender,registeredMonthCnt,followCnt,level\n"
        + "".join(f"{u},an hui,{20 + k},{'male' if k % 2 else 'female'},80,44,9\n" for k, u in enumerate(users)))
    return folder


def test_flags_type_each_impression_by_its_deepest_response_and_na_is_missing(tmp_path):
    u1, u2 = tid("U1"), tid("U2")
    lines = [
        Imp(u1, "2019-11-01 10:00:00", 1).csv_line(),                                   # impression
        Imp(u1, "2019-11-01 10:00:05", 2, click=True, view_time=3.5).csv_line(),        # click
        Imp(u1, "2019-11-01 10:00:09", 3, click=True, like=True, view_time=8.0,         # like beats click
            detail="[{'isZan': '0', 'mlogId': 'GCHCIC', 'logtime': '1572573600000'}]").csv_line(),
        Imp(u2, "2019-11-02 23:30:00", 1, click=True, view_comment=True).csv_line(),    # view_comments
    ]
    bad = Imp(u2, "2019-11-02 23:31:00", 2).csv_line().split(",")
    bad[fmt.IMPRESSIONS.header.index("isLike")] = "2"
    folder = _folder(tmp_path, [*lines, ",".join(bad)])
    text = PRESET.format(folder=folder) + "  max_quarantine_share: 0.5\n"  # one bad line of five
    root, package = write_project(tmp_path, {"ncm": text})
    defs = load(root, package)
    assert materialize(defs, [["ncm", "events"], ["ncm", "users"]], dg.DagsterInstance.ephemeral()).success
    paths = InstancePaths(os.environ["CHURN_DATA_DIR"], "ncm")
    events = pd.read_parquet(paths.events)
    assert events["event_type"].tolist() == ["impression", "click", "like", "view_comments"]
    assert events["value"].isna().tolist() == [True, False, False, True]  # NA is missing, not quarantined
    assert events["value"].iloc[1:3].tolist() == [3.5, 8.0]
    # 23:30 in Beijing on 2 November is still 2 November there, though 15:30 UTC
    assert str(events["local_day"].iloc[3])[:10] == "2019-11-02"
    (row,) = pd.read_parquet(paths.quarantine).to_dict("records")
    assert (row["line"], row["column"], row["value"], row["reason"]) == (6, "isLike", "2", "flags.like: not 0 or 1")
    users = pd.read_parquet(paths.users)
    assert len(users) == 2 and not {"registeredMonthCnt", "followCnt", "level"} & set(users.columns)


def test_the_preset_runs_the_churn_graph_on_the_twin(tmp_path):
    folder = tmp_path / "twin"
    generate(folder, users=400, seed=3)
    root, package = write_project(tmp_path, {"ncm": PRESET.format(folder=folder)})
    defs = load(root, package)
    instance = dg.DagsterInstance.ephemeral()
    assert materialize(defs, [["ncm", "events"], ["ncm", "users"]], instance).success
    paths = InstancePaths(os.environ["CHURN_DATA_DIR"], "ncm")
    with duckdb.connect() as con:
        lines = con.execute("SELECT count(*) FROM read_csv($p, all_varchar = true)",
                            {"p": str(folder / "impression_data.csv")}).fetchone()[0]
        loaded, quarantined = (con.execute("SELECT count(*) FROM read_parquet($p)", {"p": str(p)}).fetchone()[0]
                               for p in (paths.events, paths.quarantine))
    assert loaded + quarantined == lines and quarantined == 0
    assert materialize(defs, [["ncm", "cohorts"]], instance, partition_range=("2019-11-01", "2019-11-02")).success
    features = pd.read_parquet(paths.cohort(date(2019, 11, 1)) / "features.parquet")
    assert {"n_impression", "n_click", "share_click", "user_age"} <= set(features.columns)
    assert len(features) > 0


@pytest.mark.parametrize("extra, expected", [
    ("  mapping: {user_id: userId, event_time: impressTime}\n", "mapping: leave it out with preset ncm (the preset maps the columns)"),
    ("", None),
])
def test_a_preset_with_its_own_mapping_is_one_line(tmp_path, extra, expected):
    if expected is None:  # no preset and no mapping
        text = PRESET.replace("  preset: ncm\n", "").format(folder=tmp_path)
        expected = "mapping: missing (give it, or name a preset: ncm)"
    else:
        text = PRESET.format(folder=tmp_path) + extra
    message = config_error(tmp_path, "ncm", text)
    assert message.endswith(expected) and "\n" not in message, message
