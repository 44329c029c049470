"""The two baselines of the performance benchmark, measured on the same source files.

    python -m bench.baselines --source DIR [--repeat 3] [--rss-limit-gb 20]

- floor: a bare DuckDB read of impression_data.csv written to Parquet, no transformation (2 threads,
  memory_limit 6GB, types auto-detected);
- pandas: bench.pandas_baseline on the full file in a child process watched for memory; if its resident
  memory passes the limit it is stopped and the 5% user sample is run instead and extrapolated linearly.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb


def floor(source: Path) -> float:
    con = duckdb.connect(config={"threads": 2})
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET memory_limit = '6GB'")
    with tempfile.TemporaryDirectory(dir=source.parent) as tmp:
        start = time.perf_counter()
        con.execute("COPY (SELECT * FROM read_csv($src, nullstr = 'NA')) TO $dst (FORMAT parquet)",
                    {"src": str(source / "impression_data.csv"), "dst": f"{tmp}/floor.parquet"})
        return time.perf_counter() - start


def _rss_gb(pid: int) -> float:
    try:
        line = next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0.0
    return int(line.split()[1]) / 1024 / 1024


def pandas_run(source: Path, rss_limit_gb: float, sample: float | None = None) -> dict | None:
    """Phase seconds, wall, and peak RSS of one pandas run; None if it went over the memory limit."""
    cmd = [sys.executable, "-m", "bench.pandas_baseline", "--source", str(source)]
    if sample:
        cmd += ["--sample", str(sample)]
    start, peak = time.perf_counter(), 0.0
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    while proc.poll() is None:
        peak = max(peak, _rss_gb(proc.pid))
        if peak > rss_limit_gb:
            proc.kill()
            proc.wait()
            return None
        time.sleep(0.2)
    wall = time.perf_counter() - start
    out = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"pandas baseline failed:\n{out}")
    phases = {l.split()[1]: float(l.split()[2]) for l in out.splitlines() if l.startswith("PHASE")}
    return {"wall": wall, "peak_gb": peak, "phases": phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rss-limit-gb", type=float, default=20.0)
    args = parser.parse_args()
    floors = [floor(args.source) for _ in range(args.repeat)]
    print(f"floor: median {statistics.median(floors):.1f} s of {', '.join(f'{f:.1f}' for f in floors)}")
    runs, scale = [], 1
    for _ in range(args.repeat):
        run = pandas_run(args.source, args.rss_limit_gb)
        if run is None:
            print(f"pandas on the full file went over {args.rss_limit_gb} GB of RSS; running a 5% user sample")
            run, scale = pandas_run(args.source, args.rss_limit_gb, 0.05), 20
        runs.append(run)
        print(f"pandas{' (5% sample)' if scale > 1 else ''}: {run}")
    for phase in runs[0]["phases"]:
        values = [r["phases"][phase] * (scale if phase != "read" else 1) for r in runs]
        print(f"pandas {phase}: median {statistics.median(values):.1f} s")
    print(f"pandas total: median {statistics.median(r['wall'] for r in runs) * scale:.1f} s, "
          f"peak RSS {max(r['peak_gb'] for r in runs):.2f} GB, scale x{scale}")


if __name__ == "__main__":
    main()
