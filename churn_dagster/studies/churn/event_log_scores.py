"""Risk scores of an event-log cohort: each target's best champion as of the day the cohort's observation
closed, applied to its users.

Which champion: every family's newest promoted version whose training labels had closed by that day
(``champion_as_of``); of those, the ones trained on the newest partition (so they were validated on the same
users), and of them the highest validation AUC. Nothing here reads a label of the scored cohort.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.domain.engagement import N_LEVELS
from churn_dagster.stages.tensors.ml.data import CohortTensors
from churn_dagster.studies.churn.event_logs import TARGETS, registered_name
from churn_dagster.training.ml.champions import EvaluationRows
from churn_dagster.training.registry import champions_as_of, load_version


def _tag(version, key: str):
    raw = version.tags.get(key)
    return json.loads(raw) if raw is not None else None


def chosen_champion(mlflow_res: MlflowResource, prefix: str, families, target: str, as_of: date):
    """(family, registered name, version) of the champion to score with, or None."""
    found = champions_as_of(mlflow_res, {f: registered_name(prefix, f, target) for f in families}, as_of)
    if not found:
        return None
    newest = max(_tag(v, "partition") or "" for _, _, v in found)
    same = [x for x in found if (_tag(x[2], "partition") or "") == newest]
    return max(same, key=lambda x: float(_tag(x[2], "val_auc") or float("-inf")))


def score_cohort(mlflow_res: MlflowResource, prefix: str, families, folder: Path, cohort: date,
                 as_of: date) -> tuple[pd.DataFrame, dict[str, str]]:
    """One row per user of the cohort: churn probability and level (with its class probabilities), and the
    model that gave each; a target without a champion as of ``as_of`` has NULL columns, and the frame is
    empty when neither has one."""
    tensors = CohortTensors(folder)
    features = pd.read_parquet(folder / "features.parquet")
    out = pd.DataFrame({"user_id": tensors.users["user_id"].to_numpy(), "cohort_day": cohort, "scored_as_of": as_of})
    used = {}
    for target, suffix in TARGETS.items():
        chosen = chosen_champion(mlflow_res, prefix, families, target, as_of)
        if chosen is None:
            if target == "binary":
                out["p_churn"], out["churn_model"] = np.nan, None
            else:
                out["level"] = pd.array([None] * len(out), dtype="Int64")
                for k in range(N_LEVELS):
                    out[f"p_level_{k}"] = np.nan
                out["level_model"] = None
            continue
        family, name, version = chosen
        model = load_version(mlflow_res, name, family, version.version).candidate
        expected = list(getattr(model.model, "feature_names_in_", []))
        rows = EvaluationRows(target, np.zeros(len(out)), kpi=features[expected] if expected else None,
                              cohorts=[tensors], split=None)
        proba = rows.proba(family, model.model, model.normalization)
        used[suffix] = f"{name} v{version.version}"
        if target == "binary":
            out["p_churn"] = proba
            out["churn_model"] = used[suffix]
        else:
            out["level"] = proba.argmax(axis=1).astype(np.int64)
            for k in range(N_LEVELS):
                out[f"p_level_{k}"] = proba[:, k]
            out["level_model"] = used[suffix]
    return (out, used) if used else (out.iloc[0:0], used)
