"""How much each model adds over the reference row, on the same test users, with an interval.

Test AUCs of two models differ partly by chance; the paired bootstrap resamples the test users (the same
resample for both models) and reports the 2.5 and 97.5 percentiles of the AUC difference. Plain NumPy and
scikit-learn; a fixed seed so a report is reproducible.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

RESAMPLES = 500


def auc_difference(y: np.ndarray, p_model: np.ndarray, p_reference: np.ndarray, seed: int = 0,
                   resamples: int = RESAMPLES) -> tuple[float, float, float]:
    """AUC(model) - AUC(reference) on these users, and its 95 % paired-bootstrap interval (NaN when one class
    is missing)."""
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return float("nan"), float("nan"), float("nan")
    point = roc_auc_score(y, p_model) - roc_auc_score(y, p_reference)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        idx = rng.integers(0, len(y), len(y))
        if len(np.unique(y[idx])) < 2:
            continue
        diffs.append(roc_auc_score(y[idx], p_model[idx]) - roc_auc_score(y[idx], p_reference[idx]))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(point), float(low), float(high)


def reference_comparison(predictions: dict[str, pd.DataFrame], reference: str) -> pd.DataFrame:
    """One row per model: its test AUC, the reference's, and the difference with its interval, on the users
    both were tested on (``predictions``: family -> test predictions with user_id, y and p)."""
    ref = predictions[reference][["user_id", "y", "p"]].rename(columns={"p": "p_ref"})
    rows = []
    for family, frame in predictions.items():
        both = frame[["user_id", "p"]].merge(ref, on="user_id", validate="one_to_one")
        y = both["y"].to_numpy()
        ok = len(np.unique(y)) == 2
        auc = roc_auc_score(y, both["p"]) if ok else float("nan")
        ref_auc = roc_auc_score(y, both["p_ref"]) if ok else float("nan")
        diff, low, high = auc_difference(y, both["p"].to_numpy(), both["p_ref"].to_numpy())
        rows.append({"family": family, "test_users": len(both), "test_auc": auc, "reference_auc": ref_auc,
                     "gain": diff, "gain_low": low, "gain_high": high})
    return pd.DataFrame(rows)
