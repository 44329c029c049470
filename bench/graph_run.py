"""The data graph in this one process, as ``churn-dagster materialize`` runs it, with each step's wall time
and peak RSS; prints one ``RESULT {json}`` line.

    python -m bench.graph_run --source DIR --data-dir DIR [--days A:B] [--cohorts A:B]
        [--parts snapshots,daily,cohorts] [--assets KEYS] [--memory-limit 6GB] [--due-on DAY]

Three Dagster runs, one per partitioning (a run has one partitions definition): the snapshot tables, the
daily assets over ``--days`` and the cohort data (``cohort_features_job``, the selection of
``cohort_data_selection``) over ``--cohorts``, each a single-run backfill on the in-process executor in one
ephemeral instance, through the code location's own jobs and :func:`churn_dagster.runs.runner.run_steps`.
So Python and Dagster start once, as in production, and the benchmark times the code that users run.

A step's wall time is STEP_START to STEP_SUCCESS in the run's event log; its peak RSS is the largest sample
of :class:`bench.rss.RssSampler` inside that interval. Memory that a step frees but the allocator keeps can
show in a later step's peak. The process's peak is the larger of ``getrusage``'s maxrss and the largest
sample: the kernel updates its high-water mark lazily, so memory handed back with ``madvise`` can leave
maxrss below a sample taken just before.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from datetime import date, timedelta

import dagster as dg

from bench.rss import RssSampler
from churn_dagster.core.mlflow_resource import (
    MlflowResource,
    local_artifact_root,
    local_tracking_uri,
)
from churn_dagster.core.resources import (
    FeatureSettingsResource,
    LakeResource,
    NcmSourceResource,
)
from churn_dagster.definitions import build_definitions
from churn_dagster.jobs import cohort_data_selection
from churn_dagster.runs.runner import Step, run_steps

PARTS = ("snapshots", "daily", "cohorts")
STEP_EVENTS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}


def steps(parts: list[str], days: str, cohorts: str, assets: str | None = None) -> list[Step]:
    """The runs of ``parts``; ``assets`` (comma-separated keys) narrows the cohort run to those assets."""
    chosen_assets = frozenset(dg.AssetKey.from_user_string(a) for a in assets.split(",")) if assets else None
    chosen = {"snapshots": Step("raw_snapshots_job"), "daily": Step("daily_ingest_job", *days.split(":")),
              "cohorts": Step("cohort_features_job", *cohorts.split(":"), assets=chosen_assets)}
    return [chosen[p] for p in PARTS if p in parts]


def due_steps(defs: dg.Definitions, day: str) -> list[Step]:
    """What one new day makes due, as the cohort automation requests it (``core/conditions.py``: a cohort asset
    is built once every day it reads has landed): the day's ingest, then, per cohort, the assets of
    ``cohort_data_selection`` whose last day read is ``day`` (with the default windows, the observation assets
    of the cohort 13 days back and the label assets of the cohort 20 days back). Each asset's last day is
    taken from its partition mappings: a daily parent's window end, a cohort parent's own last day."""
    graph = defs.resolve_asset_graph()
    keys = cohort_data_selection.resolve(graph)
    lags: dict[dg.AssetKey, int] = {}

    def lag(key: dg.AssetKey) -> int:
        if key not in lags:
            ends = [0]
            for parent in graph.get(key).parent_keys:
                mapping = graph.get_partition_mapping(key, parent)
                windowed = isinstance(mapping, dg.TimeWindowPartitionMapping)
                if windowed or parent in keys:  # snapshot parents (all partitions) set no day
                    ends.append((mapping.end_offset if windowed else 0) + (lag(parent) if parent in keys else 0))
            lags[key] = max(ends)
        return lags[key]

    cohorts = set(graph.get(next(iter(keys))).partitions_def.get_partition_keys())
    due: dict[str, set[dg.AssetKey]] = {}
    for key in keys:
        cohort = (date.fromisoformat(day) - timedelta(days=lag(key))).isoformat()
        if cohort in cohorts:
            due.setdefault(cohort, set()).add(key)
    return [Step("daily_ingest_job", day, day),
            *(Step("cohort_features_job", c, c, assets=frozenset(due[c])) for c in sorted(due))]


def step_times(instance: dg.DagsterInstance, run_id: str) -> list[dict]:
    """Each step of the run with its start (epoch seconds) and duration, in order of start."""
    starts, ends = {}, {}
    for entry in instance.all_logs(run_id, of_type=STEP_EVENTS):
        is_start = entry.dagster_event_type == dg.DagsterEventType.STEP_START
        (starts if is_start else ends)[entry.step_key] = entry.timestamp
    return sorted(({"step": key, "start": starts[key], "seconds": ends[key] - starts[key]} for key in ends),
                  key=lambda s: s["start"])


def impressions_read(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """Lines of impression_data.csv the ingest read (its ``rows_read`` metadata); None if it did not run."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        if materialization.asset_key == dg.AssetKey("raw_impressions"):
            return materialization.metadata["rows_read"].value
    return None


def run(source: str, data_dir: str, plan: list[Step], memory_limit: str, due_on: str | None = None) -> dict:
    """Run ``plan`` (or, with ``due_on``, what that day makes due: :func:`due_steps`) in this process."""
    resources = {
        "source": NcmSourceResource(directory=source),
        "lake": LakeResource(data_dir=data_dir, duckdb_memory_limit=memory_limit),
        "features": FeatureSettingsResource(),
        "mlflow": MlflowResource(tracking_uri=local_tracking_uri(data_dir),
                                 artifact_root=local_artifact_root(data_dir)),
    }
    timed, impressions = [], None
    with RssSampler() as rss, dg.DagsterInstance.ephemeral() as instance:
        defs = build_definitions(resources=resources)
        plan = due_steps(defs, due_on) if due_on else plan
        run_ids = run_steps(defs, instance, plan, echo=lambda line: print(line, file=sys.stderr))
        for step, run_id in zip(plan, run_ids, strict=True):
            timed += [{"job": step.job, **s} for s in step_times(instance, run_id)]
            impressions = impressions or impressions_read(instance, run_id)
    for s in timed:
        s["peak_rss_gb"] = rss.peak_gb(s["start"], s["start"] + s["seconds"])
    peak_gb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, rss.peak_gb())  # maxrss: KiB
    return {"steps": timed, "process_peak_rss_gb": peak_gb, "impressions": impressions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--days", default="2019-11-01:2019-11-30", help="FIRST:LAST day partitions")
    parser.add_argument("--cohorts", default="2019-11-01:2019-11-07", help="FIRST:LAST cohort partitions")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"which of {', '.join(PARTS)} to run")
    parser.add_argument("--memory-limit", default="6GB", help="DuckDB memory_limit of every step")
    parser.add_argument("--assets", help="only these cohort assets (comma-separated keys)")
    parser.add_argument("--due-on", metavar="DAY", help="instead of --parts: one new day, the day's ingest and "
                        "the cohort assets it makes due (their cohorts' membership must exist)")
    args = parser.parse_args()
    plan = steps(args.parts.split(","), args.days, args.cohorts, args.assets)
    print("RESULT", json.dumps(run(args.source, args.data_dir, plan, args.memory_limit, args.due_on)), flush=True)


if __name__ == "__main__":
    main()
