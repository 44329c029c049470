"""Time each stage of the data graph in its own process and report wall time and peak RSS.

    python -m bench.data_graph --source DIR --data-dir DIR [--cohorts 2019-11-01:2019-11-07] [--repeat N]

Peak RSS comes from ``/usr/bin/time`` (GNU time, maximum resident set size of the stage's process), wall
time from the same. Stages run in graph order; each repetition starts from an empty data directory.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys

from bench.stage import STAGES


def run(stage: str, args: argparse.Namespace) -> tuple[float, float]:
    cmd = [
        "/usr/bin/time", "-f", "TIME %e %M", sys.executable, "-m", "bench.stage", stage,
        "--source", args.source, "--data-dir", args.data_dir, "--days", args.days, "--cohorts", args.cohorts,
        "--memory-limit", args.memory_limit,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{stage} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    line = next(l for l in out.stderr.splitlines() if l.startswith("TIME "))
    _, wall, rss_kb = line.split()
    return float(wall), int(rss_kb) / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--days", default="2019-11-01:2019-11-30")
    parser.add_argument("--cohorts", default="2019-11-01:2019-11-07")
    parser.add_argument("--memory-limit", default="6GB")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {s: [] for s in STAGES}
    for _ in range(args.repeat):
        shutil.rmtree(args.data_dir, ignore_errors=True)
        for stage in STAGES:
            results[stage].append(run(stage, args))
            wall, rss = results[stage][-1]
            print(f"{stage}: {wall:.1f} s, {rss:.2f} GB", flush=True)
    print(f"\nmachine: {platform.machine()}, {platform.processor() or ''} Python {platform.python_version()}")
    print("| stage | wall s (median) | runs | peak RSS GB (max) |\n|---|---|---|---|")
    total = 0.0
    for stage, runs in results.items():
        med = statistics.median(w for w, _ in runs)
        total += med
        print(f"| {stage} | {med:.1f} | {', '.join(f'{w:.1f}' for w, _ in runs)} | {max(r for _, r in runs):.2f} |")
    print(f"| **total** | {total:.1f} | | |")


if __name__ == "__main__":
    main()
