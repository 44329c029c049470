"""The performance benchmark in one command: the whole data graph in one process, the floor, pandas and
Polars on the same files, a scaling curve and one new day, repeated; prints the tables of docs/BENCHMARKS.md.

    python -m bench.full_scale --source /work/scratch/full --work /work/scratch/bench --repeat 3 \\
        --scale 0.25=/work/scratch/scale/q --scale 0.5=/work/scratch/scale/h --scale 2=/work/scratch/scale/d

Each repetition runs the data graph (bench.graph_run: snapshots, the 30 days, the cohorts of dt 1-7, the
cohorts the baselines compute) in a fresh process over a fresh data directory, then the three baselines
(bench.floor_baseline, bench.pandas_baseline, bench.polars_baseline), each a child process watched for its
peak RSS, so that every figure of one repetition comes from the same machine state and the same files; then
the full build, every cohort the 30 days label (dt 1-10), which is what one new day is compared with. After
every build the SHA-256 of each file it wrote is kept: the repetitions must agree byte for byte, and so must
the cohorts dt 1-7 built in a range of seven and in a range of ten. The scaling curve runs the
same graph over each ``--scale`` source (made with ``churn-dagster generate --users N``); the 1× point is
``--source``. Last, day 21 is delivered into a landing folder (as the sensor sees it) and only what one new
day costs runs on top of the last 1× build: its ingest and activity, then what the cohort automation builds
when a day lands (``bench.graph_run.due_steps``): the label assets of the cohort whose label period it
completes and the observation assets of the cohort whose observation window it closes. Writes every raw
figure to WORK/results.json and the tables to WORK/tables.md; the 1× data directory WORK/data stays, for
``bench.train_epoch``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from datetime import date
from importlib.metadata import version
from pathlib import Path

from bench.digests import file_digests
from bench.report import render
from bench.rss import run_watched
from churn_dagster.synth.landing import land_days

DAYS, COHORTS, BASELINE_COHORTS = "2019-11-01:2019-11-30", "2019-11-01:2019-11-07", 7
# Every cohort whose label period the 30 days hold (dt + 13 + 7 <= 30): what a full build of the lake builds.
EVERY_COHORT = "2019-11-01:2019-11-10"
# Day 21 completes cohort dt 1's label period and cohort dt 8's observation window: the automation then builds
# dt 1's label assets and dt 8's observation assets (bench.graph_run.due_steps). The full build stops at dt 7,
# so dt 8's membership and split, which the automation built on day 8, are built first, untimed.
NEW_DAY, OBSERVED_COHORT = date(2019, 11, 21), "2019-11-08"


def graph(source: Path, data: Path, log: Path, memory_limit: str, parts: str = "snapshots,daily,cohorts",
          days: str = DAYS, cohorts: str = COHORTS, fresh: bool = True, due_on: date | None = None,
          assets: str | None = None, digest: bool = False) -> dict:
    """One run of bench.graph_run in a fresh process, over an emptied ``data`` unless ``fresh`` is False; with
    ``digest``, the SHA-256 of every file the build left (the report compares the repetitions')."""
    if fresh:
        shutil.rmtree(data, ignore_errors=True)
    cmd = [sys.executable, "-m", "bench.graph_run", "--source", str(source), "--data-dir", str(data),
           "--days", days, "--cohorts", cohorts, "--parts", parts, "--memory-limit", memory_limit,
           *(["--due-on", due_on.isoformat()] if due_on else []), *(["--assets", assets] if assets else [])]
    rep = run_watched(cmd, log)
    print(f"  {log.stem}: {rep['wall']:.1f} s, peak {rep['process_peak_rss_gb']:.2f} GB", flush=True)
    if digest:
        rep["digests"] = file_digests(data)
    return rep


def baseline(name: str, source: Path, log: Path, rss_limit_gb: float) -> dict:
    cmd = [sys.executable, "-m", f"bench.{name}_baseline", "--source", str(source), "--cohorts", str(BASELINE_COHORTS)]
    rep = run_watched(cmd, log, rss_limit_gb)
    print(f"  {log.stem}: {rep['wall'] or 0:.1f} s, peak {rep['peak_gb']:.2f} GB", rep.get("stopped", ""), flush=True)
    return rep


def machine() -> dict:
    cpuinfo, meminfo = (Path(f"/proc/{name}").read_text().splitlines() for name in ("cpuinfo", "meminfo"))
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    ram = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")) * 1024 / 1024 ** 3
    return {"machine": platform.machine(), "cpu": cpu or platform.processor(), "cores": os.cpu_count(),
            "ram_gb": ram, "python": platform.python_version(),
            **{p: version(p) for p in ("duckdb", "pandas", "polars", "dagster")}}


def scale_arg(text: str) -> tuple[str, Path]:
    factor, _, folder = text.partition("=")
    return f"{float(factor):g}", Path(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, type=Path, help="the 1× source folder")
    parser.add_argument("--work", required=True, type=Path, help="data directories, logs, results.json")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=scale_arg, action="append", default=[], metavar="FACTOR=DIR",
                        help="another source for the scaling curve, e.g. 2=/work/scratch/scale/d (repeatable)")
    parser.add_argument("--scale-repeat", type=int, help="repetitions of each --scale point (default --repeat)")
    parser.add_argument("--memory-limit", default="6GB", help="DuckDB memory_limit of the data graph")
    parser.add_argument("--rss-limit-gb", type=float, default=20.0, help="stop a baseline above this RSS")
    args = parser.parse_args()
    work, logs = args.work, args.work / "logs"
    results = {"machine": machine(), "repeat": args.repeat, "source": str(args.source),
               "graph": [], "full_build": [], **{name: [] for name in ("floor", "pandas", "polars")}}
    for i in range(1, args.repeat + 1):
        print(f"repetition {i} of {args.repeat}", flush=True)
        results["graph"].append(graph(args.source, work / "data", logs / f"graph-{i}.log", args.memory_limit,
                                      digest=True))
        for name in ("floor", "pandas", "polars"):
            results[name].append(baseline(name, args.source, logs / f"{name}-{i}.log", args.rss_limit_gb))
        results["full_build"].append(graph(args.source, work / "data", logs / f"full-{i}.log", args.memory_limit,
                                           cohorts=EVERY_COHORT, digest=True))

    print("one new day", flush=True)
    landing = work / "landing"
    shutil.rmtree(landing, ignore_errors=True)
    land_days(args.source, landing, [NEW_DAY])
    graph(args.source, work / "data", logs / "daily-prepare.log", args.memory_limit, "cohorts",
          cohorts=f"{OBSERVED_COHORT}:{OBSERVED_COHORT}", fresh=False, assets="cohort_users,user_splits")
    results["daily"] = [graph(landing, work / "data", logs / f"daily-{i}.log", args.memory_limit, fresh=False,
                              due_on=NEW_DAY) for i in range(1, args.repeat + 1)]

    results["scaling"] = {}
    for factor, folder in args.scale:
        print(f"scale {factor}×", flush=True)
        data = work / f"data-{factor}x"
        reps = [graph(folder, data, logs / f"graph-{factor}x-{i}.log", args.memory_limit)
                for i in range(1, (args.scale_repeat or args.repeat) + 1)]
        shutil.rmtree(data)  # the 2× lake is large; only the 1× one is kept
        results["scaling"][factor] = {"source": str(folder), "graph": reps}

    (work / "results.json").write_text(json.dumps(results, indent=1))
    tables = render(results)
    (work / "tables.md").write_text(tables)
    print("\n" + tables)


if __name__ == "__main__":
    main()
