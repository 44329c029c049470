"""The naive baseline: sessionisation and labels in vectorised pandas (groupby, diff, cumsum), from the CSV.

    python -m bench.pandas_baseline --source DIR [--cohorts 7]

Reads the 9 columns it needs with pyarrow's multithreaded reader, validates nothing and holds everything in
memory, the way an analyst writes it in an afternoon. The rules are in :mod:`bench.baseline_common`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench import baseline_common as common


def read(source: str) -> pd.DataFrame:
    return pd.read_csv(f"{source}/impression_data.csv", usecols=common.COLUMNS, engine="pyarrow",
                       dtype={"userId": "string[pyarrow]", "mlogId": "string[pyarrow]"})


def compute(imp: pd.DataFrame, cohorts: int, phase=lambda _name: None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sessions and labels of the users first seen on dt 1..``cohorts``."""
    first = imp.groupby("userId", sort=False)["dt"].min().rename("first_dt")
    imp = imp.join(first, on="userId")
    imp = imp[imp["first_dt"] <= cohorts]
    phase("cohorts")

    window = imp[(imp["dt"] >= imp["first_dt"]) & (imp["dt"] < imp["first_dt"] + common.OBSERVATION_DAYS)]
    window = window.sort_values(["userId", "impressTime", "impressPosition", "mlogId"])
    gap = window.groupby("userId", sort=False)["impressTime"].diff()
    session = (gap.isna() | (gap >= common.GAP_MS)).astype(np.int64).groupby(window["userId"], sort=False).cumsum()
    sessions = window.assign(session=session.to_numpy()).groupby(["userId", "session"], sort=False).agg(
        start=("impressTime", "min"), end=("impressTime", "max"), impressions=("dt", "size"),
        clicks=("isClick", "sum"), max_position=("impressPosition", "max"))
    phase("sessions")

    period = imp[(imp["dt"] >= imp["first_dt"] + common.OBSERVATION_DAYS)
                 & (imp["dt"] < imp["first_dt"] + common.OBSERVATION_DAYS + common.LABEL_DAYS)]
    labels = period.groupby("userId", sort=False).agg(
        impressions=("dt", "size"), active_days=("dt", "nunique"), clicks=("isClick", "sum"),
        likes=("isLike", "sum"), shares=("isShare", "sum"), comments=("isComment", "sum"))
    labels = labels.reindex(first[first <= cohorts].index, fill_value=0)
    labels["churned"] = labels["impressions"] == 0
    phase("labels")
    return (sessions.reset_index()[common.SESSION_COLUMNS],
            labels.rename_axis("userId").reset_index()[common.LABEL_COLUMNS])


def run(source: str, cohorts: int, phase: common.Phases) -> dict:
    imp = read(source)
    phase("read")
    sessions, labels = compute(imp, cohorts, phase)
    return {"users": len(labels), "sessions": len(sessions), "churn_share": float(labels["churned"].mean())}


if __name__ == "__main__":
    common.main(__doc__, run)
