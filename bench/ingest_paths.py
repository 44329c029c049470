"""The impressions ingest with and without its fast path, against the floor, in one run.

    python -m bench.ingest_paths --source DIR --work DIR --repeat 3

Each repetition, in this order and each in a fresh process: the floor (``bench.floor_baseline``'s DuckDB COPY
of ``impression_data.csv`` to Parquet), the ingest as shipped (canonical lines typed by Arrow,
``stages/ingest/sql/fast.py``), and the ingest with every line the exact SQL way. Prints the medians, the
ratios to the floor and whether both ingests wrote the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from bench.floor_baseline import run as floor_run


def ingest_once(source: Path, out: Path, exact: bool) -> dict:
    """One ingest of ``source``'s impressions into a fresh lake at ``out`` (in this process)."""
    from churn_dagster.domain import ncm_format as fmt
    from churn_dagster.domain.calendar import Calendar
    from churn_dagster.stages.ingest.sql.fast import FastLines
    from churn_dagster.stages.ingest.sql.run import ingest
    from churn_dagster.storage.duck import DuckSettings, connect
    from churn_dagster.storage.lake import Lake

    if exact:
        FastLines.split = lambda self, block: (None, block)
    shutil.rmtree(out, ignore_errors=True)
    calendar = Calendar()
    con = connect(DuckSettings(memory_limit="6GB", threads=2, temp_directory=out / ".duckdb_tmp"))
    start = time.perf_counter()
    result = ingest(con, fmt.IMPRESSIONS, [source / "impression_data.csv"], Lake(out), calendar,
                    [calendar.day(d) for d in range(1, calendar.num_days + 1)])
    seconds = time.perf_counter() - start
    digest = hashlib.sha256()
    for f in sorted(out.rglob("*.parquet")):
        digest.update(str(f.relative_to(out)).encode() + f.read_bytes())
    return {"seconds": seconds, "rows": result.rows_read, "sha256": digest.hexdigest()}


def _child(source: Path, out: Path, exact: bool) -> dict:
    code = (f"import json; from bench.ingest_paths import ingest_once; from pathlib import Path; "
            f"print(json.dumps(ingest_once(Path({str(source)!r}), Path({str(out)!r}), {exact})))")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list] = {"floor": [], "fast": [], "exact": []}
    for i in range(args.repeat):
        runs["floor"].append({"seconds": floor_run(str(args.source), 0, None)["seconds"]})
        for name in ("fast", "exact"):
            runs[name].append(_child(args.source, args.work / name, name == "exact"))
        print(f"repetition {i + 1}: " + ", ".join(f"{k} {v[-1]['seconds']:.1f} s" for k, v in runs.items()), flush=True)
    median = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    same = len({r["sha256"] for r in runs["fast"] + runs["exact"]}) == 1
    print(f"{date.today()}: {runs['fast'][0]['rows']:,} lines, medians of {args.repeat}: floor {median['floor']:.1f} s, "
          f"fast path {median['fast']:.1f} s ({median['fast'] / median['floor']:.2f}x the floor), exact path only "
          f"{median['exact']:.1f} s ({median['exact'] / median['floor']:.2f}x); exact / fast = "
          f"{median['exact'] / median['fast']:.2f}; same bytes: {same}")
    (args.work / "ingest_paths.json").write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
