"""Build the data graph and the trend data of one log through Dagster in a fresh process (the calendar and the
trend periods are read from the environment when the code location loads), then save what the models of the
last trend partition read, for test_trend_windows.py.

    CHURN_LAST_DAY=... python assets_tests/trend_window_run.py SOURCE ROOT OUT.npz

Prints one JSON line: the windows, the partition, the raw days each trend input's partition mappings declare
for it, and any failed check.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))

from conftest import resources_for  # noqa: E402

from churn_dagster.core.partitions import Partitions  # noqa: E402
from churn_dagster.definitions import build_definitions  # noqa: E402
from churn_dagster.domain.calendar import parse_day  # noqa: E402
from churn_dagster.runs.runner import data_graph_steps, run_steps, trend_steps  # noqa: E402
from churn_dagster.settings import settings_from_env  # noqa: E402
from churn_dagster.storage.lake import Lake  # noqa: E402
from churn_dagster.studies.trends.partitions import TrendPartitions  # noqa: E402
from churn_dagster.studies.trends.training import partition_trend_data  # noqa: E402

SMALL_LDA = {"ops": {"intent_topics": {"config": {"k_max": 4, "max_iter": 5}}}}
INPUTS = {"trend_sessions": ("raw_impressions",),
          "trend_macro_features": ("raw_impressions", "user_day_activity", "raw_mlog_stats", "raw_creator_stats"),
          "session_events": ("raw_impressions",), "user_day_events": ("raw_impressions",)}


def declared_days(graph, asset: str, parent: str, key: str) -> list[str]:
    node = graph.get(dg.AssetKey(asset))
    subset = node.partitions_def.subset_with_partition_keys([key])
    mapped = node.partition_mappings[dg.AssetKey(parent)].get_upstream_mapped_partitions_result_for_partitions(
        subset, node.partitions_def, graph.get(dg.AssetKey(parent)).partitions_def)
    return sorted(mapped.partitions_subset.get_partition_keys())


def main(source: Path, root: Path, out: Path) -> None:
    settings = settings_from_env()
    trend = TrendPartitions(Partitions(settings))
    defs = build_definitions(settings, resources_for(source, root))
    data_steps = [replace(s, run_config=SMALL_LDA) for s in trend_steps(settings)[:-1]]  # not the models
    with dg.DagsterInstance.ephemeral() as instance:
        run_ids = run_steps(defs, instance, [*data_graph_steps(settings.calendar), *data_steps], echo=lambda _: None)
        checks = [e.dagster_event.event_specific_data for run_id in run_ids
                  for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
    partition = trend.partitions.get_last_partition_key()
    lake = Lake(root / "data")
    cohorts, intents, data = partition_trend_data(trend, lake, parse_day(partition))
    labels = pd.read_parquet(lake.cohort("trend_labels", cohorts[-1])).sort_values("user_id")
    np.savez(out, daily=data.daily, macro=data.macro.to_numpy(np.float64), macro_columns=np.array(data.macro.columns, dtype=str),
             offsets=data.offsets, behaviour=data.behaviour, intents=data.intents, topics=intents.topics,
             user_id=data.users["user_id"].to_numpy(str), split=data.users["split"].to_numpy(str),
             day_trend=data.labels("day"), session_trend=data.labels("session"),
             second_active_days=labels["second_active_days"].to_numpy(), second_sessions=labels["second_sessions"].to_numpy())
    graph = defs.resolve_asset_graph()
    print(json.dumps({
        "observation_days": settings.observation_days, "first_days": trend.windows.first_period_days,
        "second_days": trend.windows.second_period_days, "partition": partition,
        "cohorts": [c.isoformat() for c in cohorts],
        "declared": {f"{a} <- {p}": declared_days(graph, a, p, partition) for a, parents in INPUTS.items() for p in parents},
        "failed_checks": [(c.asset_key.to_user_string(), c.check_name) for c in checks if not c.passed],
    }))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
