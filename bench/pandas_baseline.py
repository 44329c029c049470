"""The naive baseline: sessionisation and labels in vectorised pandas (groupby, diff, cumsum), from the CSV.

    python -m bench.pandas_baseline --source DIR [--sample 0.05] [--cohorts 7]

Computes what the pipeline's cohort_users, label_scores (churn, active days, impressions) and sessions
compute for the cohorts of dt 1..N: first appearance, observation-window sessions with a 30-minute gap,
session counts and sizes, and label-period activity. Prints each phase's seconds. With ``--sample`` it
keeps that share of users (by a stable hash of the id) and the caller extrapolates.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

GAP_MS = 30 * 60 * 1000
COLUMNS = ["userId", "dt", "impressTime", "impressPosition", "mlogId", "isClick", "isLike", "isShare", "isComment"]


def _phase(name: str, start: float) -> float:
    now = time.perf_counter()
    print(f"PHASE {name} {now - start:.2f}", flush=True)
    return now


def run(source: str, sample: float | None, cohorts: int, observation: int = 14, label: int = 7) -> dict:
    t = time.perf_counter()
    imp = pd.read_csv(f"{source}/impression_data.csv", usecols=COLUMNS, engine="pyarrow",
                      dtype={"userId": "string[pyarrow]", "mlogId": "string[pyarrow]"})
    if sample is not None:
        keep = pd.util.hash_pandas_object(imp["userId"], index=False).to_numpy() % 10_000 < sample * 10_000
        imp = imp[keep]
    t = _phase("read", t)

    first = imp.groupby("userId", sort=False)["dt"].min().rename("first_dt")
    imp = imp.join(first, on="userId")
    imp = imp[imp["first_dt"] <= cohorts]
    t = _phase("cohorts", t)

    window = imp[(imp["dt"] >= imp["first_dt"]) & (imp["dt"] < imp["first_dt"] + observation)]
    window = window.sort_values(["userId", "impressTime", "impressPosition", "mlogId"])
    gap = window.groupby("userId", sort=False)["impressTime"].diff()
    session = (gap.isna() | (gap >= GAP_MS)).astype(np.int64).groupby(window["userId"], sort=False).cumsum()
    sessions = window.assign(session=session.to_numpy()).groupby(["userId", "session"], sort=False).agg(
        impressions=("dt", "size"), clicks=("isClick", "sum"), start=("impressTime", "min"),
        end=("impressTime", "max"), max_position=("impressPosition", "max"))
    t = _phase("sessions", t)

    period = imp[(imp["dt"] >= imp["first_dt"] + observation) & (imp["dt"] < imp["first_dt"] + observation + label)]
    labels = period.groupby("userId", sort=False).agg(
        impressions=("dt", "size"), active_days=("dt", "nunique"), clicks=("isClick", "sum"),
        likes=("isLike", "sum"), shares=("isShare", "sum"), comments=("isComment", "sum"))
    labels = labels.reindex(first[first <= cohorts].index, fill_value=0)
    labels["churned"] = labels["impressions"] == 0
    _phase("labels", t)
    return {"users": len(labels), "sessions": len(sessions), "churn_share": float(labels["churned"].mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--sample", type=float)
    parser.add_argument("--cohorts", type=int, default=7)
    args = parser.parse_args()
    print("RESULT", run(args.source, args.sample, args.cohorts), flush=True)


if __name__ == "__main__":
    main()
