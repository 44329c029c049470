"""The event-log component's data graph on a long, sparse log, timed: a generated purchase log (18 months,
100,000 users by default) through ``events`` and every weekly ``cohorts`` partition, in this one process,
as a dg project of its own loads it. Prints one ``RESULT {json}`` line with each step's wall time, the
peak RSS and the counts.

    python -m bench.event_log_graph --work DIR [--users 100000] [--days 548] [--rate 0.05] [--grain week]
        [--repeat 3]

Each repeat starts from an empty data directory and a fresh ephemeral instance; the log is generated once.
The floor, measured in the same run before each repeat, is a bare DuckDB copy of the same CSV file to one
Parquet file (types detected, 2 threads): the least any pipeline spends to get the log out of CSV.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb

from bench.event_log_project import load, materialize, write_project
from bench.rss import RssSampler
from churn_dagster.synth.event_logs import LogSpec, generate_log

START = date(2023, 1, 2)  # a Monday
YAML = """\
type: churn_dagster.components.EventLogComponent
attributes:
  name: shop
  source:
    paths: [{path}]
  mapping:
    user_id: customer_id
    event_time: order_date
    value: amount
    event_id: order_id
  windows:
    start: "{start}"
    end: "{end}"
    grain: {grain}
"""


def floor_seconds(log: Path, out: Path) -> float:
    con = duckdb.connect(config={"threads": 2, "memory_limit": "6GB", "preserve_insertion_order": False})
    start = time.perf_counter()
    con.execute("COPY (SELECT * FROM read_csv($src)) TO $dst (FORMAT parquet)", {"src": str(log), "dst": str(out)})
    seconds = time.perf_counter() - start
    out.unlink()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=548)
    parser.add_argument("--grain", choices=("day", "week"), default="week")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rate", type=float, default=0.05, help="the median customer's orders per day at signup")
    args = parser.parse_args()
    log = args.work / f"purchases-{args.users}-{args.days}-{args.rate}.csv"
    if not log.exists():
        generate_log(LogSpec("purchases", users=args.users, days=args.days, start=START, rate=args.rate), log)
    end = date.fromordinal(START.toordinal() + args.days - 1)
    runs = []
    for k in range(args.repeat):
        folder = args.work / f"run{k}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        floor = floor_seconds(log, folder / "floor.parquet")
        os.environ["CHURN_DATA_DIR"] = str(folder / "data")
        os.environ.pop("MLFLOW_TRACKING_URI", None)  # mlflow exports the previous run's store
        root, package = write_project(folder, {"shop": YAML.format(path=log, start=START, end=end, grain=args.grain)})
        with RssSampler() as rss:
            started = time.perf_counter()
            defs = load(root, package)
            loaded = time.perf_counter()
            instance = dg.DagsterInstance.ephemeral()
            events = materialize(defs, [["shop", "events"]], instance)
            after_events = time.perf_counter()
            keys = defs.resolve_asset_graph().get(dg.AssetKey(["shop", "cohorts"])).partitions_def.get_partition_keys()
            cohorts = materialize(defs, [["shop", "cohorts"]], instance, partition_range=(keys[0], keys[-1]))
            done = time.perf_counter()
        meta = events.get_asset_materialization_events()[0].materialization.metadata
        runs.append({"load_defs_s": loaded - started, "events_s": after_events - loaded, "cohorts_s": done - after_events,
                     "total_s": done - started, "floor_s": floor, "ratio_to_floor": (done - started) / floor,
                     "peak_rss_gb": rss.peak_gb(), "partitions": len(keys),
                     "records": meta["records_counted"].value, "users": meta["users"].value,
                     "ok": events.success and cohorts.success})
        print(json.dumps(runs[-1]), flush=True)
    summary = {k: statistics.median(r[k] for r in runs) for k in ("load_defs_s", "events_s", "cohorts_s", "total_s",
                                                                   "floor_s", "ratio_to_floor", "peak_rss_gb")}
    print("RESULT " + json.dumps({"users": args.users, "days": args.days, "grain": args.grain, "runs": runs,
                                  "median": summary}))


if __name__ == "__main__":
    main()
