"""Sequence tensors for the LSTMs: ragged, memory-mappable, standardised on the training split."""


import json

import dagster as dg
import numpy as np
import pyarrow.parquet as pq

from churn_dagster.core.asset_attributes import cohort_asset
from churn_dagster.core.metadata import check, table
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.stages.tensors.sql import tensors as tensor_build
from churn_dagster.storage.lake import Lake

# Static features that may be missing (NaN) in the stored arrays; a model imputes them.
MAY_BE_MISSING = ("age", "registered_months", "follow_count")


def _verify(lake: Lake, cohort) -> dict[str, tuple[bool, str]]:
    """Re-open the arrays as a consumer would and check their structure and stored training moments."""
    folder = lake.tensors(cohort).resolve()
    meta = json.loads((folder / "normalization.json").read_text())
    offsets = np.load(folder / "offsets.npy")
    seq = np.load(folder / "sequences.npy", mmap_mode="r")
    static = np.load(folder / "static.npy", mmap_mode="r")
    users = pq.read_table(folder / "users.parquet", columns=["split", "user_id"]).to_pandas()
    structure = (
        offsets[0] == 0 and bool(np.all(np.diff(offsets) >= 1)) and offsets[-1] == len(seq)
        and len(offsets) == len(users) + 1 and len(static) == len(users)
    )
    nullable = [meta["static"]["features"].index(n) for n in MAY_BE_MISSING if n in meta["static"]["features"]]
    strict = [i for i in range(static.shape[1]) if i not in nullable]
    finite = bool(np.isfinite(seq).all() and np.isfinite(static[:, strict]).all()
                  and not np.isinf(static[:, nullable]).any())
    train_rows = np.repeat((users["split"] == "train").to_numpy(), np.diff(offsets))
    if train_rows.any():
        deviation = float(np.abs(np.asarray(seq[train_rows], np.float64).mean(axis=0) - meta["sequence"]["train_mean"]).max())
    else:
        deviation = float(np.abs(meta["sequence"]["train_mean"]).max())
    return {
        "offsets_consistent": (structure, f"{len(users)} users, {len(seq)} sessions, offsets monotone and complete"),
        "finite_values": (finite, "sequence values finite; static values finite or NaN where a value may be missing"),
        "unique_users": (users["user_id"].is_unique, "each user appears once, in one split"),
        "training_moments_stored": (
            deviation < 1e-4, f"largest gap between a stored training mean and the arrays: {deviation:.2e}"),
    }


def tensor_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """``sequence_tensors``."""

    @dg.asset(
        description="Per cohort: sequences.npy [sessions x 24] float32 stored ragged with offsets.npy, static.npy "
        "[users x 17, or 18 with follow_count], users.parquet (row, user, split, churn and the label-period components "
        "a protocol derives the level from) and normalization.json (training-session moments, feature names). Values "
        "are raw: each model fits imputation and scaling on its own training users. Open with numpy "
        "mmap_mode='r' and pad per batch.",
        **cohort_asset(p, "tensors", code_version="2", kinds={"numpy", "duckdb"}),
        deps=["sessions", "static_features", "label_scores", "user_splits"],
        check_specs=[
            dg.AssetCheckSpec(name, asset="sequence_tensors", blocking=True)
            for name in ("offsets_consistent", "finite_values", "unique_users", "training_moments_stored")
        ],
    )
    def sequence_tensors(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        cohorts = [parse_day(k) for k in context.partition_keys]
        verdicts = {}
        with lake.connect() as con:
            for key, cohort in zip(context.partition_keys, cohorts, strict=True):
                summary = tensor_build.build_tensors(con, lake.lake, cohort, features.max_sessions)
                context.add_asset_metadata({
                    "dagster/row_count": dg.MetadataValue.int(summary.users),  # a row per user
                    "sessions": dg.MetadataValue.int(summary.sessions),
                    "truncated_users": dg.MetadataValue.int(summary.truncated_users),
                    "users_per_split": table(["split", "users"], sorted(summary.split_counts.items())),
                    "path": dg.MetadataValue.path(str(lake.lake.tensors(cohort))),
                }, partition_key=key)
                for name, (ok, text) in _verify(lake.lake, cohort).items():
                    prev_ok, prev_text = verdicts.get(name, (True, ""))
                    verdicts[name] = (prev_ok and ok, f"{prev_text}{cohort}: {text}; ")
        meta = {
            "sequence_features": dg.MetadataValue.md(", ".join(n for n, _ in tensor_build.SEQUENCE_FEATURES)),
            "static_features": dg.MetadataValue.md(", ".join(n for n, _ in tensor_build.STATIC_FEATURES)),
            **features.metadata(p.calendar),
        }
        return dg.MaterializeResult(
            metadata=meta, check_results=[check(name, ok, text) for name, (ok, text) in verdicts.items()]
        )

    return [sequence_tensors]
