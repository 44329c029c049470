"""Is churn predictable in the generated files, and about as predictable as in the real log?

For users first seen in dt 1-7, the observation window (their first 14 days) should predict whether they are
active in the label week well but not perfectly (the reference study's models reach ROC-AUC 0.73-0.78), and
the trend inside the window (second week against the first) should add information beyond the totals. This
module measures both from the written files: single-statistic AUCs, and the held-out AUC of a logistic
regression on window totals with and without trend features.

Run ``python -m churn_dagster.synth.predictability DIR`` to print the numbers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from .calibrate import connect

_FEATURES_SQL = """
    SELECT c.user_id,
           count(i.user_id) FILTER (WHERE i.dt < c.first_dt + 14) AS impressions,
           count(DISTINCT i.dt) FILTER (WHERE i.dt < c.first_dt + 14) AS active_days,
           count(DISTINCT i.dt) FILTER (WHERE i.dt < c.first_dt + 7) AS days_week1,
           count(DISTINCT i.dt) FILTER (WHERE i.dt BETWEEN c.first_dt + 7 AND c.first_dt + 13) AS days_week2,
           count(i.user_id) FILTER (WHERE i.dt < c.first_dt + 7) AS impressions_week1,
           count(i.user_id) FILTER (WHERE i.dt BETWEEN c.first_dt + 7 AND c.first_dt + 13) AS impressions_week2,
           coalesce(sum(i.is_click::INT) FILTER (WHERE i.dt < c.first_dt + 14), 0) AS clicks,
           max(i.dt) FILTER (WHERE i.dt < c.first_dt + 14) - c.first_dt AS last_active_day,
           count(i.user_id) FILTER (WHERE i.dt BETWEEN c.label_first AND c.label_last) > 0 AS active_in_label
    FROM cohort c JOIN impressions i ON i.user_id = c.user_id
    GROUP BY c.user_id, c.first_dt
    ORDER BY c.user_id
"""


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """ROC-AUC by the rank-sum formula, ties counted as half."""
    values, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    positives = int(label.sum())
    negatives = len(label) - positives
    return float((ranks[label].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def auc_within_strata(score: np.ndarray, label: np.ndarray, strata: np.ndarray) -> float:
    """AUC over the pairs (active, inactive) that share a stratum: what ``score`` adds once the stratum is known."""
    weighted, pairs = 0.0, 0.0
    for stratum in np.unique(strata):
        member = strata == stratum
        positives = int(label[member].sum())
        n_pairs = positives * (int(member.sum()) - positives)
        if n_pairs:
            weighted += auc(score[member], label[member]) * n_pairs
            pairs += n_pairs
    return weighted / pairs


def _logistic_fit(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Newton-Raphson for a ridge-penalised logistic regression with an intercept column already in ``x``."""
    beta = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        hessian = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, x.T @ (y - p) - ridge * beta)
        beta += step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def _held_out_auc(columns: list[np.ndarray], y: np.ndarray) -> float:
    """Fit on every other user, score the rest (users are in ID order, which is unrelated to behaviour)."""
    x = np.column_stack([np.ones(len(y)), *columns])
    x[:, 1:] = (x[:, 1:] - x[:, 1:].mean(axis=0)) / (x[:, 1:].std(axis=0) + 1e-12)
    train = np.arange(len(y)) % 2 == 0
    beta = _logistic_fit(x[train], y[train].astype(float))
    return auc(x[~train] @ beta, y[~train])


def predictability(source_dir: str | Path) -> dict[str, float]:
    """AUCs for "active in the label week" among users first seen in dt 1-7."""
    con = connect(source_dir)
    try:
        data = con.execute(_FEATURES_SQL).fetchnumpy()
    finally:
        con.close()
    y = np.asarray(data["active_in_label"], dtype=bool)
    f = {k: np.asarray(v, dtype=float) for k, v in data.items() if k not in ("user_id", "active_in_label")}
    totals = [np.log1p(f["impressions"]), np.log1p(f["active_days"]), np.log1p(f["clicks"])]
    trend = [
        f["days_week2"] - f["days_week1"],
        np.log1p(f["impressions_week2"]) - np.log1p(f["impressions_week1"]),
        f["last_active_day"],
    ]
    return {
        "cohort users": float(len(y)),
        "active in label week": float(y.mean()),
        "AUC impressions in window": auc(f["impressions"], y),
        "AUC active days in window": auc(f["active_days"], y),
        "AUC week-2 minus week-1 active days": auc(trend[0], y),
        "same, within equal window active days": auc_within_strata(trend[0], y, f["active_days"]),
        "AUC logistic, totals (held out)": _held_out_auc(totals, y),
        "AUC logistic, totals + trend (held out)": _held_out_auc(totals + trend, y),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Churn predictability of a folder of NCM-format CSV files")
    parser.add_argument("source_dir")
    args = parser.parse_args(argv)
    for name, value in predictability(args.source_dir).items():
        print(f"{name:<42} {value:.4f}")


if __name__ == "__main__":
    main()
