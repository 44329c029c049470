"""The full-scale performance run: every stage of the data graph, the floor and the pandas baseline in one
run, repeated, plus the incremental cost of one delivered day. Prints the tables of docs/BENCHMARKS.md.

    python -m bench.full_scale --source /work/scratch/full --work /work/scratch/bench --repeat 3

Each stage runs in its own process (bench.stage) so its peak RSS is its own; the stages of one repetition
write into a fresh data directory. The daily path delivers day 21 into a landing folder (as the sensor
sees it) and runs what one new day costs: ingest of that day, its activity, and the cohort whose label
period it completes, against the full rebuild of the same stages for every day and the cohorts of dt 1-7.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
from datetime import date
from pathlib import Path

from bench.baselines import floor, pandas_run
from bench.data_graph import run as run_stage
from bench.stage import STAGES
from churn_dagster.synth.landing import land_days

COVERED_BY_PANDAS = ("ingest", "activity", "cohorts", "labels", "sessions")


class Args:
    def __init__(self, source, data_dir, days="2019-11-01:2019-11-30", cohorts="2019-11-01:2019-11-07"):
        self.source, self.data_dir, self.days, self.cohorts, self.memory_limit = source, data_dir, days, cohorts, "6GB"


def median(values) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    stages: dict[str, list[tuple[float, float]]] = {s: [] for s in STAGES}
    floors, pandas = [], []
    data = args.work / "data"
    for i in range(args.repeat):
        shutil.rmtree(data, ignore_errors=True)
        for stage in STAGES:
            stages[stage].append(run_stage(stage, Args(str(args.source), str(data))))
            print(f"[{i + 1}] {stage}: {stages[stage][-1][0]:.1f} s, {stages[stage][-1][1]:.2f} GB", flush=True)
        floors.append(floor(args.source))
        pandas.append(pandas_run(args.source, rss_limit_gb=20.0))
        print(f"[{i + 1}] floor {floors[-1]:.1f} s, pandas {pandas[-1]}", flush=True)

    # One new day through the daily path, on top of the last full build (days 1-20 already loaded).
    landing = args.work / "landing"
    shutil.rmtree(landing, ignore_errors=True)
    land_days(args.source, landing, [date(2019, 11, 21)])
    daily = {}
    for stage, days, cohorts in (("ingest", "2019-11-21:2019-11-21", None), ("activity", "2019-11-21:2019-11-21", None),
                                 *((s, None, "2019-11-01:2019-11-01") for s in
                                   ("cohorts", "labels", "sessions", "static_features", "kpi_features", "tensors"))):
        extra = {"days": days} if days else {"cohorts": cohorts}
        daily[stage] = [run_stage(stage, Args(str(landing), str(data), **extra))[0] for _ in range(args.repeat)]

    print(f"\nmachine: {platform.machine()}, 2 cores; medians of {args.repeat} runs\n")
    print("| stage | wall s (median) | runs | peak RSS GB (max) |\n|---|---|---|---|")
    for stage, runs in stages.items():
        print(f"| {stage} | {median(w for w, _ in runs):.1f} | {', '.join(f'{w:.1f}' for w, _ in runs)} | "
              f"{max(r for _, r in runs):.2f} |")
    total = sum(median(w for w, _ in runs) for runs in stages.values())
    covered = sum(median(w for w, _ in stages[s]) for s in COVERED_BY_PANDAS)
    compute = sum(median(w for w, _ in stages[s]) for s in COVERED_BY_PANDAS if s != "ingest")
    f, p = median(floors), median(r["wall"] for r in pandas)
    p_compute = median(sum(v for k, v in r["phases"].items() if k != "read") for r in pandas)
    print(f"| **whole data graph** | **{total:.1f}** | | {max(r for runs in stages.values() for _, r in runs):.2f} |")
    print(f"\nfloor (bare DuckDB CSV -> Parquet): {f:.1f} s ({', '.join(f'{x:.1f}' for x in floors)}); "
          f"graph / floor = {total / f:.2f}")
    print(f"pandas (full file): {p:.1f} s, peak RSS {max(r['peak_gb'] for r in pandas):.2f} GB; phases "
          f"{pandas[0]['phases']}")
    print(f"steps pandas covers, ours: {covered:.1f} s -> pandas / ours = {p / covered:.2f}")
    print(f"without the CSV read (ours from typed Parquet, pandas after read_csv): ours {compute:.1f} s, "
          f"pandas {p_compute:.1f} s -> {p_compute / compute:.2f}")
    one_day = sum(median(v) for v in daily.values())
    print(f"\none new day (daily path): {one_day:.1f} s {({k: round(median(v), 1) for k, v in daily.items()})}; "
          f"full rebuild of the same stages: {total - median(w for w, _ in stages['snapshots']):.1f} s")


if __name__ == "__main__":
    main()
