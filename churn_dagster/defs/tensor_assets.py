"""Sequence tensors for the LSTMs: ragged, memory-mappable, standardised on the training split."""


import json

import dagster as dg
import numpy as np
import pyarrow.parquet as pq

from churn_dagster.calendar import parse_day
from churn_dagster.defs.metadata import check, markdown_table
from churn_dagster.defs.partitions import cohort_partitions
from churn_dagster.defs.raw_assets import OWNERS
from churn_dagster.defs.resources import FeatureSettingsResource, LakeResource
from churn_dagster.transforms import tensors as tensor_build
from churn_dagster.transforms.lake import Lake


def _verify(lake: Lake, cohort) -> dict[str, tuple[bool, str]]:
    """Re-open the arrays as a consumer would and check their structure and standardisation."""
    folder = lake.tensors(cohort).resolve()
    offsets = np.load(folder / "offsets.npy")
    seq = np.load(folder / "sequences.npy", mmap_mode="r")
    static = np.load(folder / "static.npy", mmap_mode="r")
    users = pq.read_table(folder / "users.parquet", columns=["split", "user_id"]).to_pandas()
    structure = (
        offsets[0] == 0 and bool(np.all(np.diff(offsets) >= 1)) and offsets[-1] == len(seq)
        and len(offsets) == len(users) + 1 and len(static) == len(users)
    )
    finite = bool(np.isfinite(seq).all() and np.isfinite(static).all())
    train = (users["split"] == "train").to_numpy()
    train_rows = np.repeat(train, np.diff(offsets))
    mean_dev = float(np.abs(np.asarray(seq[train_rows], dtype=np.float64).mean(axis=0)).max()) if train_rows.any() else 0.0
    static_dev = float(np.abs(np.asarray(static[train], dtype=np.float64).mean(axis=0)).max()) if train.any() else 0.0
    return {
        "offsets_consistent": (structure, f"{len(users)} users, {len(seq)} sessions, offsets monotone and complete"),
        "finite_values": (finite, "all sequence and static values finite"),
        "unique_users": (users["user_id"].is_unique, "each user appears once, in one split"),
        "standardised_on_train": (
            max(mean_dev, static_dev) < 1e-3,
            f"largest |mean| of a standardised column over training rows: {max(mean_dev, static_dev):.2e}",
        ),
    }


@dg.asset(
    description="Per cohort: sequences.npy [sessions x 24] float32 stored ragged with offsets.npy, static.npy "
    "[users x 18], users.parquet (row, user, split, churned, level, score) and normalization.json (training "
    "means/stds and imputation values). Open with numpy mmap_mode='r' and pad per batch.",
    group_name="tensors",
    kinds={"numpy", "duckdb"},
    owners=OWNERS,
    partitions_def=cohort_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["sessions", "static_features", "label_scores", "user_splits"],
    check_specs=[
        dg.AssetCheckSpec(name, asset="sequence_tensors")
        for name in ("offsets_consistent", "finite_values", "unique_users", "standardised_on_train")
    ],
)
def sequence_tensors(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
    cohorts = [parse_day(k) for k in context.partition_keys]
    rows, verdicts = [], {}
    with lake.connect() as con:
        for cohort in cohorts:
            summary = tensor_build.build_tensors(con, lake.lake, cohort, features.max_sessions)
            rows.append((cohort.isoformat(), summary.users, summary.sessions, summary.truncated_users,
                         json.dumps(summary.split_counts, sort_keys=True)))
            for name, (ok, text) in _verify(lake.lake, cohort).items():
                prev_ok, prev_text = verdicts.get(name, (True, ""))
                verdicts[name] = (prev_ok and ok, f"{prev_text}{cohort}: {text}; ")
    meta = {
        "dagster/row_count": dg.MetadataValue.int(sum(r[1] for r in rows)),
        "tensors": dg.MetadataValue.md(
            markdown_table(["cohort", "users", "sessions", "truncated users", "split"], rows)
        ),
        "sequence_features": dg.MetadataValue.md(", ".join(n for n, _ in tensor_build.SEQUENCE_FEATURES)),
        "static_features": dg.MetadataValue.md(", ".join(n for n, _ in tensor_build.STATIC_FEATURES)),
        "max_sessions": dg.MetadataValue.int(features.max_sessions),
        "path": dg.MetadataValue.path(str(lake.lake.root / "tensors")),
    }
    return dg.MaterializeResult(
        metadata=meta, check_results=[check(name, ok, text) for name, (ok, text) in verdicts.items()]
    )
