"""Materialize one stage of the data graph in this process, for benchmarks that time each stage separately.

    python -m bench.stage STAGE --source DIR --data-dir DIR [--days A:B] [--cohorts A:B]

Each stage is a real Dagster execution of the code location's assets (single run over a partition range),
in an ephemeral instance, so a wrapper such as ``/usr/bin/time -v`` measures exactly that stage.
"""

from __future__ import annotations

import argparse
import time

import dagster as dg

from churn_dagster.definitions import ASSETS
from churn_dagster.defs.constants import partition_range_tags
from churn_dagster.defs.mlflow_resource import (
    MlflowResource,
    local_artifact_root,
    local_tracking_uri,
)
from churn_dagster.defs.resources import (
    FeatureSettingsResource,
    LakeResource,
    NcmSourceResource,
)

STAGES: dict[str, tuple[list[str], str | None]] = {
    "snapshots": (["raw_user_demographics", "raw_mlog_demographics", "raw_creator_demographics"], None),
    "ingest": (["raw_impressions", "raw_mlog_stats", "raw_creator_stats"], "days"),
    "activity": (["user_day_activity"], "days"),
    "cohorts": (["cohort_users"], "cohorts"),
    "labels": (["user_splits", "label_scores"], "cohorts"),
    "sessions": (["sessions"], "cohorts"),
    "static_features": (["static_features"], "cohorts"),
    "kpi_features": (["kpi_features"], "cohorts"),
    "tensors": (["sequence_tensors"], "cohorts"),
}


def run_stage(stage: str, source: str, data_dir: str, days: str, cohorts: str, memory_limit: str) -> float:
    selection, partitioning = STAGES[stage]
    tags = {}
    if partitioning:
        first, last = (days if partitioning == "days" else cohorts).split(":")
        tags = partition_range_tags(first, last)
    resources = {
        "source": NcmSourceResource(directory=source),
        "lake": LakeResource(data_dir=data_dir, duckdb_memory_limit=memory_limit),
        "features": FeatureSettingsResource(),
        "mlflow": MlflowResource(tracking_uri=local_tracking_uri(data_dir), artifact_root=local_artifact_root(data_dir)),
    }
    start = time.perf_counter()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(ASSETS, selection=selection, resources=resources, tags=tags, instance=instance)
    if not result.success:
        raise SystemExit(f"stage {stage} failed")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--source", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--days", default="2019-11-01:2019-11-30")
    parser.add_argument("--cohorts", default="2019-11-01:2019-11-07")
    parser.add_argument("--memory-limit", default="6GB")
    args = parser.parse_args()
    seconds = run_stage(args.stage, args.source, args.data_dir, args.days, args.cohorts, args.memory_limit)
    print(f"STAGE {args.stage} {seconds:.2f}")


if __name__ == "__main__":
    main()
