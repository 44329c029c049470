"""The benchmark's own code: the pandas and Polars baselines compute the same thing (and the right thing),
a step's peak RSS is read inside its interval, and the one command runs end to end on a tiny log and
reports every step of the data graph. Nothing here asserts a timing."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import Imp, write_impressions

from bench import pandas_baseline, polars_baseline
from bench.digests import differing
from bench.report import daily_against_full_build
from bench.rss import GB, RssSampler, run_watched
from bench.tile_tensors import tile_cohort
from churn_dagster.stages.tensors.ml.data import CohortTensors, SequenceDataset
from churn_dagster.synth.generator import generate

REPO = Path(__file__).resolve().parents[1]
ROWS = [
    Imp("u1", "2019-11-01 10:00:00", position=1, click=True),
    Imp("u1", "2019-11-01 10:00:00", position=2),  # same request: same session
    Imp("u1", "2019-11-01 10:10:00", position=3),
    Imp("u1", "2019-11-01 10:40:00", position=1),  # exactly 30 minutes later: a new session
    Imp("u1", "2019-11-02 09:00:00", position=5, click=True),
    Imp("u1", "2019-11-15 12:00:00", position=1, click=True),  # label period of cohort dt 1: dt 15..21
    Imp("u1", "2019-11-15 12:01:00", position=2, like=True),
    Imp("u1", "2019-11-20 08:00:00", position=1, share=True, comment=True),
    Imp("u1", "2019-11-22 08:00:00", position=1, click=True),  # after it
    Imp("u2", "2019-11-03 20:00:00", position=4),
    Imp("u2", "2019-11-03 20:29:59", position=1, click=True),  # a second under 30 minutes: same session
    Imp("u2", "2019-11-16 20:00:00", position=1),  # last day of its observation window (dt 3..16)
    Imp("u3", "2019-11-09 10:00:00", position=1),  # first seen on dt 9: no cohort of dt 1..7
]


def ms(local: str) -> int:
    return Imp("x", local).epoch_ms


EXPECTED_SESSIONS = sorted([  # userId, start, end, impressions, clicks, max_position
    ("u1", ms("2019-11-01 10:00:00"), ms("2019-11-01 10:10:00"), 3, 1, 3),
    ("u1", ms("2019-11-01 10:40:00"), ms("2019-11-01 10:40:00"), 1, 0, 1),
    ("u1", ms("2019-11-02 09:00:00"), ms("2019-11-02 09:00:00"), 1, 1, 5),
    ("u2", ms("2019-11-03 20:00:00"), ms("2019-11-03 20:29:59"), 2, 1, 4),
    ("u2", ms("2019-11-16 20:00:00"), ms("2019-11-16 20:00:00"), 1, 0, 1),
])
EXPECTED_LABELS = [  # userId, impressions, active_days, clicks, likes, shares, comments, churned
    ("u1", 3, 2, 1, 1, 1, 1, False),
    ("u2", 0, 0, 0, 0, 0, 0, True),
]


@pytest.fixture
def source(tmp_path: Path) -> Path:
    write_impressions(tmp_path / "source", ROWS)
    return tmp_path / "source"


def test_pandas_and_polars_baselines_agree_with_each_other_and_by_hand(source):
    pd_sessions, pd_labels = pandas_baseline.compute(pandas_baseline.read(str(source)), cohorts=7)
    pl_sessions, pl_labels = polars_baseline.compute(polars_baseline.scan(str(source)), cohorts=7)
    assert sorted(pd_sessions.itertuples(index=False, name=None)) == sorted(pl_sessions.rows()) == EXPECTED_SESSIONS
    assert sorted(pd_labels.itertuples(index=False, name=None)) == sorted(pl_labels.rows()) == EXPECTED_LABELS


def test_baseline_commands_report_the_same_summary(source, tmp_path):
    reports = {name: run_watched([sys.executable, "-m", f"bench.{name}_baseline", "--source", str(source)],
                                 tmp_path / f"{name}.log") for name in ("pandas", "polars")}
    for report in reports.values():
        assert {k: report[k] for k in ("users", "sessions", "churn_share")} == {"users": 2, "sessions": 5,
                                                                                 "churn_share": 0.5}
        assert report["peak_gb"] > 0 and report["phases"]
    assert set(reports["pandas"]["phases"]) == {"read", "cohorts", "sessions", "labels"}


def test_peak_of_an_interval_is_its_largest_sample_or_the_one_before():
    sampler = RssSampler()
    sampler.samples = [(1.0, 1 * GB), (2.0, 5 * GB), (3.0, 2 * GB), (4.0, 3 * GB)]
    assert sampler.peak_gb() == 5
    assert sampler.peak_gb(2.5, 4.0) == 3
    assert sampler.peak_gb(3.2, 3.5) == 2  # no sample inside: the last one before stands in


def test_a_child_over_the_memory_limit_is_stopped_and_reported(tmp_path):
    hog = "import time; block = bytearray(400 * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(30)"
    report = run_watched([sys.executable, "-c", hog], tmp_path / "hog.log", rss_limit_gb=0.2)
    assert report["wall"] is None and report["peak_gb"] > 0.2 and report["stopped"] == "over 0.2 GB of RSS"


@pytest.fixture(scope="module")
def one_command(tmp_path_factory) -> Path:
    """The benchmark's command on an 800-user log, once, with that same log as its 2× point; its work folder."""
    root = tmp_path_factory.mktemp("bench")
    generate(root / "src", users=800, seed=3)
    subprocess.run([sys.executable, "-m", "bench.full_scale", "--source", str(root / "src"),
                    "--work", str(root / "work"), "--repeat", "1", "--scale", f"2={root / 'src'}",
                    "--memory-limit", "1GB"],
                   cwd=REPO, check=True, capture_output=True)
    return root


def test_the_one_command_runs_every_step_and_writes_its_tables(one_command):
    work = one_command / "work"
    results = json.loads((work / "results.json").read_text())
    graph = results["graph"][0]
    steps = {s["step"]: s for s in graph["steps"]}
    assert {"raw_user_demographics", "raw_impressions", "user_day_activity", "cohort_users", "user_splits",
            "sessions", "kpi_features", "sequence_tensors", "continuation_examples"} <= set(steps)
    assert all(0 < s["peak_rss_gb"] <= graph["process_peak_rss_gb"] for s in steps.values())
    lines = (one_command / "src" / "impression_data.csv").read_text().count("\n") - 1
    assert graph["impressions"] == lines
    # One new day: its ingest, then what the automation builds (no snapshot, no cohort's membership or split).
    assert {s["step"] for s in results["daily"][0]["steps"]} == set(steps) - {
        "raw_user_demographics", "raw_mlog_demographics", "raw_creator_demographics", "cohort_users", "user_splits"}
    assert [r["users"] for r in results["pandas"]] == [r["users"] for r in results["polars"]]
    tables = (work / "tables.md").read_text()
    assert "| **whole data graph, one process** |" in tables and "| 2× |" in tables
    assert tables.count("| yes |") + tables.count("| **no** |") == 9  # every target judged
    # The full build: every cohort the 30 days label, what one new day is measured against; the cohorts the two
    # builds share came out byte for byte the same from a range of seven and a range of ten.
    full = results["full_build"][0]
    assert {f.split("/")[2] for f in full["digests"] if f.startswith("cohorts/cohort_users/")} == {
        f"cohort=2019-11-{d:02d}" for d in range(1, 11)}
    assert set(graph["digests"]) < set(full["digests"])
    assert "every cohort, dt 1-10" in tables
    assert "- Byte identity, cohorts dt 1-7 built in a range of 7 and of 10: " in tables
    assert tables.split("range of 7 and of 10: ")[1].split("\n")[0].endswith("files compared, identical.")


def test_the_report_compares_digests_and_the_daily_path_with_the_full_build():
    same, other = {"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "4"}
    assert differing([same, same]) == (2, []) and differing([same, other]) == (2, ["b"])
    # 20 s of one day: 10.0 % of a 200 s full build meets the target; of a 190 s whole graph it would not.
    target, measured, met = daily_against_full_build(20.0, 190.0, [{"wall": 150.0}, {"wall": 200.0}, {"wall": 210.0}])
    assert met and measured.startswith("20.0 s / 200.0 s (every cohort, dt 1-10) = 10.0%; against 20.0 s / 190.0 s")
    assert daily_against_full_build(20.0, 190.0, None)[2] is False


def test_training_throughput_runs_on_the_lake_the_command_leaves(one_command):
    out = subprocess.run([sys.executable, "-m", "bench.train_epoch", "--data-dir", str(one_command / "work" / "data"),
                          "--epochs", "1", "--device", "cpu"], cwd=REPO, check=True, capture_output=True, text=True)
    assert "10 cohorts (cohort=2019-11-01 .. cohort=2019-11-10)" in out.stdout  # the full build stays
    assert [line.split(" | ")[0] for line in out.stdout.splitlines() if line.startswith("| ") and "---" not in line][
        1:] == ["| lstm", "| hybrid"]


def test_the_headroom_columns_are_each_day_and_the_newest_sessions_by_hand(tmp_path):
    """User a: two sessions on day 1 (3 + 4 impressions) and one on day 3 (9); user b: one session on day 2.
    Per day: ln(1 + 7), 0, ln(1 + 10) for a; the newest session first, NaN past a user's last."""
    import duckdb

    from bench.sequence_headroom import last_sessions, per_day

    path = tmp_path / "sessions.parquet"
    sessions = pd.DataFrame({
        "user_id": ["a", "a", "a", "b"], "global_session_idx": [1, 2, 3, 1], "day_num": [1, 1, 3, 2],
        "total_impressions": [3, 4, 9, 5], "total_clicks": [0, 1, 2, 0], "hour_of_day": [8.0, 21.0, 22.5, 7.0],
        "duration_min": [0.0, 1.0, 3.0, 0.5],
    })
    sessions.to_parquet(path)
    with duckdb.connect() as con:
        days = per_day(con, [str(path)], 3).set_index("user_id").sort_index()
        last = last_sessions(con, [str(path)]).set_index("user_id").sort_index()
    assert np.allclose(days.loc["a"], np.log([8, 1, 10])) and np.allclose(days.loc["b"], np.log([1, 6, 1]))
    assert last.loc["a", "last1_day"] == 3 and last.loc["a", "last2_day"] == 1
    assert np.isclose(last.loc["a", "last1_impressions"], np.log(10)) and last.loc["a", "last3_clicks"] == 0
    assert last.loc["a", "last2_hour"] == 21.0 and np.isclose(last.loc["a", "last1_minutes"], np.log(4))
    assert last.loc["b", "last1_clicks"] == 0 and pd.isna(last.loc["b", "last2_day"])
    assert pd.isna(last.loc["a", "last4_day"])


def test_the_protocol_table_compares_the_deployed_and_the_adjacent_windows_of_the_last_cohort():
    """November 2019, 14 + 7 days: the last labelled cohort is 11-10, its observation window closes on
    11-23, and only the cohorts whose label days end by then (c + 20 <= 11-23: 11-01..03) were labelled."""
    from bench.model_protocols import partition_protocols
    from churn_dagster.domain.calendar import Calendar

    days = [date(2019, 11, d) for d in range(1, 31)]
    random, deployed, adjacent = partition_protocols(Calendar(days[0], days[-1], 14, 7), 7)
    assert (random.scheme, random.train_cohorts, random.test_cohorts) == ("random", tuple(days[3:10]), tuple(days[3:10]))
    assert (deployed.scheme, deployed.train_cohorts, deployed.test_cohorts) == ("out_of_time", tuple(days[:3]),
                                                                                (days[9],))
    # The adjacent variant's training labels end on 11-09 + 20 = 11-29, inside 11-10's label period.
    assert (adjacent.train_cohorts, adjacent.test_cohorts) == (tuple(days[3:9]), (days[9],))
    assert deployed.test_split is None and random.test_split == "test"


def test_the_event_log_benchmark_times_the_graph_against_the_floor(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench.event_log_graph", "--work", str(tmp_path), "--users", "400",
                          "--days", "60", "--repeat", "2"], capture_output=True, text=True, check=True, timeout=600)
    result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
    runs = result["runs"]
    assert len(runs) == 2 and all(r["ok"] for r in runs)
    assert runs[0]["records"] == runs[1]["records"] > 0 and runs[0]["users"] == 400
    assert runs[0]["partitions"] == 9  # weeks starting 2023-01-02 .. 2023-02-27 (the log's last day is 03-02)
    for run in runs:
        assert run["ratio_to_floor"] == pytest.approx(run["total_s"] / run["floor_s"])
    assert result["median"]["total_s"] == pytest.approx(sorted(r["total_s"] for r in runs)[0] / 2
                                                        + sorted(r["total_s"] for r in runs)[1] / 2)


def test_tiled_tensors_repeat_every_user_with_its_sequence(tmp_path):
    """bench/tile_tensors.py: two users of 2 and 1 steps repeated 3 times read back as six users whose
    sequences, statics and splits are the originals', with the stored counts tripled and the moments kept."""
    small = tmp_path / "small"
    small.mkdir()
    np.save(small / "sequences.npy", np.arange(3 * 24, dtype=np.float32).reshape(3, 24))
    np.save(small / "static.npy", np.asarray([[1.0] * 17, [2.0] * 17], dtype=np.float32))
    np.save(small / "offsets.npy", np.asarray([0, 2, 3], dtype=np.int64))
    pd.DataFrame({"row_idx": [0, 1], "user_id": ["a", "b"], "split": ["train", "test"],
                  "churned": [True, False]}).to_parquet(small / "users.parquet")
    meta = {"users": 2, "sessions": 3, "train_users": 1, "train_sessions": 2,
            "sequence": {"features": 24, "train_mean": [0.5] * 24, "train_std": [1.5] * 24},
            "static": {"features": [f"s{i}" for i in range(17)], "missing_as": "NaN"}}
    (small / "normalization.json").write_text(json.dumps(meta))

    assert tile_cohort(CohortTensors(small), 3, tmp_path / "big") == 6
    big = CohortTensors(tmp_path / "big")
    assert big.offsets.tolist() == [0, 2, 3, 5, 6, 8, 9]
    assert big.users["user_id"].tolist() == ["a~0", "b~0", "a~1", "b~1", "a~2", "b~2"]
    assert big.users["split"].tolist() == ["train", "test"] * 3
    assert {k: big.meta[k] for k in ("users", "sessions", "train_users", "train_sessions")} == {
        "users": 6, "sessions": 9, "train_users": 3, "train_sessions": 6}
    assert big.meta["sequence"]["train_mean"] == [0.5] * 24
    data = SequenceDataset([big], "binary", split="test")
    assert len(data) == 3
    seq, static, label = data[2]
    assert seq.tolist() == [list(range(48, 72))] and static.tolist() == [2.0] * 17 and label == 0.0


def test_the_ceiling_bench_simulates_the_users_of_the_generated_log(tmp_path):
    """bench/event_log_ceiling.py reads the generator's own process: its events per user and day are the
    generated purchase log's, a user who has already left churns with probability 1, and the oracle that
    knows every hidden state ranks churners better than the reference's four totals."""
    from bench.event_log_ceiling import forward_churn, run_one, simulate
    from churn_dagster.synth.event_logs import LogSpec, generate_log

    generate_log(LogSpec("purchases", users=600, days=40, seed=3), tmp_path / "p.csv")
    log = pd.read_csv(tmp_path / "p.csv")
    by_hand = log.groupby(["customer_id", "order_date"]).size().sort_index()
    sim = simulate("purchases", 600, 40, 3)
    user, day = np.nonzero(sim["events"])
    ours = pd.Series(sim["events"][user, day], index=pd.MultiIndex.from_arrays(
        [[f"C{u:07d}" for u in user], [str(date(2024, 1, 1) + pd.Timedelta(days=int(d))) for d in day]],
        names=["customer_id", "order_date"])).sort_index()
    assert ours.to_dict() == by_hand.to_dict()
    gone = np.nonzero(sim["snapshot"].gone & (sim["traits"].signup + 28 <= 40))[0]
    assert len(gone) > 0 and (forward_churn(sim, gone, 3) == 1.0).all()
    aucs = run_one("purchases", 4000, 60, 1)
    assert aucs["oracle"] > aucs["reference"] + 0.05
