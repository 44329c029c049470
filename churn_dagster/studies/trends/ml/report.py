"""The trend comparison: per model, our mean ± std over seeds on both tasks beside the DIGMN paper's results.

Inputs are the ``summary.json`` files the trend model assets write; nothing here knows about Dagster or MLflow.
The paper's figures (Li, Du, Fu et al., WSDM 2023) come from LinkedIn users, not from our data, and are there for
orientation only: Table 3 (day-level macro F1, session-level AUROC, mean ± std over 5 seeds) for the baselines
and DIGMN, and for the static ablation Table 4's "DIGMN (Static) {160, 96}", the static predictor of about
DIGMN's parameter count (38.6K against 40.8K), as ours has the same count as our DIGMN. The paper has no
result for the Temporal GCN-LSTM counterpart here (not built: we have no action graphs).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from churn_dagster.studies.trends.ml.hyperparameters import TREND_MODELS

TASK_COLUMNS = {"day": "day macro F1", "session": "session AUROC"}
# (mean, std) per task, and the table of the paper each comes from.
PAPER_LINKEDIN = {
    "logreg": ({"day": (0.446, 0.000), "session": (0.561, 0.000)}, "Table 3"),
    "xgboost": ({"day": (0.460, 0.001), "session": (0.569, 0.001)}, "Table 3"),
    "mlp": ({"day": (0.463, 0.002), "session": (0.571, 0.002)}, "Table 3"),
    "activity_lstm": ({"day": (0.518, 0.001), "session": (0.605, 0.001)}, "Table 3"),
    "multichannel": ({"day": (0.575, 0.002), "session": (0.633, 0.002)}, "Table 3"),
    "digmn": ({"day": (0.592, 0.001), "session": (0.655, 0.001)}, "Table 3"),
    "digmn_static": ({"day": (0.585, 0.001), "session": (0.645, 0.002)}, "Table 4, static {160, 96}"),
}


def comparison_table(summaries: Mapping[tuple[str, str], dict], labels: Mapping[str, str]) -> pd.DataFrame:
    """One row per model (in :data:`TREND_MODELS` order): for each task our test mean and std over the seeds
    and the paper's LinkedIn mean and std, then the seeds and the paper's table. ``summaries[(model, task)]``
    is the ``summary`` entry of a model asset's ``summary.json``; a missing one leaves its cells empty."""
    rows = []
    for model in TREND_MODELS:
        paper, source = PAPER_LINKEDIN[model]
        row: dict = {"model": labels[model]}
        seeds = set()
        for task, column in TASK_COLUMNS.items():
            ours = summaries.get((model, task))
            row[f"{column} (ours)"] = ours["test_mean"] if ours else math.nan
            row[f"{column} std (ours)"] = ours["test_std"] if ours else math.nan
            row[f"{column} (paper, LinkedIn)"], row[f"{column} std (paper, LinkedIn)"] = paper[task]
            if ours:
                seeds.add(int(ours["seeds"]))
        row["seeds"] = "/".join(str(s) for s in sorted(seeds))
        row["paper source"] = source
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_std(mean: float, std: float) -> str:
    return "n/a" if math.isnan(mean) else f"{mean:.3f} ± {std:.3f}"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`comparison_table` with each mean and std as one "mean ± std" text, as the paper prints them."""
    shown = {"model": table["model"]}
    for column in TASK_COLUMNS.values():
        for who in ("ours", "paper, LinkedIn"):
            shown[f"{column} ({who})"] = [_mean_std(m, s) for m, s in
                                          zip(table[f"{column} ({who})"], table[f"{column} std ({who})"], strict=True)]
    return pd.DataFrame({**shown, "seeds": table["seeds"], "paper source": table["paper source"]})
