"""What the churn models add over the reference row on generated event logs of other shapes: for each shape
and generator seed, the component's graph on a fresh data directory, the five families trained on the
newest labelled weekly partition, and each family's test AUC beside the reference row's (gradient boosting
on recency, frequency and monetary value) on the same test users, with the paired-bootstrap interval of the
gain. Prints a line per run and one ``RESULT {json}`` line.

    python -m bench.event_log_models --work DIR [--shapes purchases,ratings] [--seeds 0,1,2] [--users 20000]
        [--days 150] [--training-cohorts 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from bench.event_log_project import load, materialize, write_project
from churn_dagster.stages.events.sql.cohorts import Windows
from churn_dagster.synth.event_logs import LogSpec, generate_log

START = date(2024, 1, 1)
FAMILIES = ("rfm_gbm", "logreg", "xgboost", "lstm", "hybrid_lstm")
MAPPINGS = {
    "purchases": "user_id: customer_id\n    event_time: order_date\n    value: amount\n    event_id: order_id",
    "ratings": "user_id: userId\n    event_time: timestamp\n    time_format: epoch_s\n    item_id: movieId\n"
               "    value: rating",
    "clicks": "user_id: visitor\n    event_time: ts\n    event_type: action\n    item_id: sku\n    value: price\n"
              "    session_id: session",
}
YAML = """\
type: churn_dagster.components.EventLogComponent
attributes:
  name: bench
  source:
    paths: [{path}]
  mapping:
    {mapping}
  windows:
    start: "{start}"
    end: "{end}"
    grain: week
    training_cohorts: {training}
"""


def newest_labelled(windows: Windows, end: date) -> date:
    cohort = windows.cohort_of(end)
    while windows.labels_close(cohort) > end:
        cohort -= timedelta(days=7)
    return cohort


def run_one(work: Path, shape: str, seed: int, users: int, days: int, training: int) -> dict:
    log = work / f"{shape}-{users}-{days}-{seed}.csv"
    if not log.exists():
        generate_log(LogSpec(shape, users=users, days=days, start=START, seed=seed), log)
    end = START + timedelta(days=days - 1)
    folder = work / f"{shape}-{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["CHURN_DATA_DIR"] = str(folder / "data")
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # mlflow exports the previous run's store; each run has its own
    root, package = write_project(folder, {"bench": YAML.format(path=log, mapping=MAPPINGS[shape], start=START,
                                                                 end=end, training=training)})
    defs = load(root, package)
    instance = dg.DagsterInstance.ephemeral()
    keys = defs.resolve_asset_graph().get(dg.AssetKey(["bench", "cohorts"])).partitions_def.get_partition_keys()
    assert materialize(defs, [["bench", "events"]], instance).success
    assert materialize(defs, [["bench", "cohorts"]], instance, partition_range=(keys[0], keys[-1])).success
    partition = newest_labelled(Windows(START, grain="week", training_cohorts=training), end).isoformat()
    result = materialize(defs, [["bench", f"churn_{f}"] for f in FAMILIES] + [["bench", "churn_report"]], instance,
                         partition_key=partition)
    assert result.success
    report = json.loads((folder / "data" / "event_logs" / "bench" / "reports" / partition / "report.json").read_text())
    gains = {g["family"]: g for g in report["gain_over_reference"]}
    best = max((f for f in FAMILIES if f != "rfm_gbm"), key=lambda f: gains[f]["test_auc"])
    return {"shape": shape, "seed": seed, "partition": partition, "test_users": gains["rfm_gbm"]["test_users"],
            "reference_auc": gains["rfm_gbm"]["test_auc"],
            "families": {f: {k: gains[f][k] for k in ("test_auc", "gain", "gain_low", "gain_high")} for f in FAMILIES},
            "best": best, "best_gain": gains[best]["gain"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--shapes", default="purchases,ratings")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=150)
    parser.add_argument("--training-cohorts", type=int, default=8)
    args = parser.parse_args()
    runs = []
    for shape in args.shapes.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            runs.append(run_one(args.work, shape, seed, args.users, args.days, args.training_cohorts))
            print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for shape in {r["shape"] for r in runs}:
        mine = [r for r in runs if r["shape"] == shape]
        summary[shape] = {f: {"test_auc_mean": statistics.mean(r["families"][f]["test_auc"] for r in mine),
                              "gain_mean": statistics.mean(r["families"][f]["gain"] for r in mine),
                              "gain_std": statistics.stdev([r["families"][f]["gain"] for r in mine]) if len(mine) > 1 else 0.0}
                          for f in FAMILIES}
    print("RESULT " + json.dumps({"users": args.users, "days": args.days, "runs": runs, "summary": summary}))


if __name__ == "__main__":
    main()
