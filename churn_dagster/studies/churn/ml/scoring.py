"""Scoring the latest observation window with trained models: churn probability and level probabilities
per user, joined into the table a retention team works from."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn_dagster.domain.engagement import LEVEL_NAMES, N_LEVELS
from churn_dagster.stages.tensors.ml.data import (
    Normalization,
    SequenceDataset,
    make_loader,
)
from churn_dagster.training.ml import classical
from churn_dagster.training.ml.champions import IncompatibleModel
from churn_dagster.training.ml.train import predict_proba


def _empty(target: str) -> np.ndarray:
    return np.zeros(0) if target == "binary" else np.zeros((0, N_LEVELS))


def sequence_proba(model, tensor_dir, target: str, normalization: Normalization, batch_size: int = 512) -> tuple:
    """(users, probabilities) of a network over an unlabelled tensor folder, in the folder's user order."""
    dataset = SequenceDataset([tensor_dir], target, normalization=normalization, labelled=False)
    if len(dataset) == 0:
        return dataset.users, _empty(target)
    return dataset.users, predict_proba(model, make_loader(dataset, batch_size))


def classical_proba(model, kpi: pd.DataFrame, target: str) -> tuple:
    """(users, probabilities) of a logistic regression or XGBoost model over a KPI table, reading the
    features the model was trained on (a table built with other settings is refused, not guessed)."""
    features = list(model.feature_names_in_)
    missing = sorted(set(features) - set(kpi.columns))
    if missing:
        raise IncompatibleModel(f"the model reads KPI features this table lacks: {missing}")
    if len(kpi) == 0:
        return kpi[["user_id", "cohort_day"]], _empty(target)
    return kpi[["user_id", "cohort_day"]], classical.predict_proba(model, kpi[features].astype(np.float64), target)


def risk_table(churn: tuple, level: tuple) -> pd.DataFrame:
    """One row per user: P(churn), the most likely level with its name, and all five level probabilities."""
    (churn_users, p_churn), (level_users, p_level) = churn, level
    a = churn_users[["user_id", "cohort_day"]].reset_index(drop=True).assign(churn_probability=p_churn)
    b = pd.DataFrame(p_level, columns=[f"p_{name.lower().replace('-', '_')}" for name in LEVEL_NAMES])
    b.insert(0, "user_id", level_users["user_id"].to_numpy())
    table = a.merge(b, on="user_id", how="inner", validate="one_to_one")
    if len(table) != len(a) or len(table) != len(b):
        raise ValueError("the churn and the level model scored different users")
    probs = table[b.columns[1:]].to_numpy()
    table["predicted_level"] = probs.argmax(axis=1)
    table["predicted_level_name"] = np.asarray(LEVEL_NAMES)[table["predicted_level"]]
    return table.sort_values(["churn_probability", "user_id"], ascending=[False, True], ignore_index=True)
