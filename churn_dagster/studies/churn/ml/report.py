"""The model comparison: one table per target with the SPEC's evaluation columns, for both protocols,
beside the reference study's figures, plus the comparison figures.

Inputs are the files each model asset writes (``metrics.json`` and ``test_predictions.parquet``); nothing
here knows about Dagster or MLflow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from churn_dagster.domain.engagement import LEVEL_NAMES
from churn_dagster.training.ml import plots

FAMILY_LABELS = {"logreg": "Logistic regression", "xgboost": "XGBoost", "lstm": "LSTM", "hybrid_lstm": "Hybrid LSTM"}
SCHEME_LABELS = {"random": "random split", "out_of_time": "out of time"}
TARGET_LABELS = {"binary": "churn", "level": "level"}
# SPEC.md "Evaluation": Guo (2025) on the real NCM data, test split of the random protocol.
REFERENCE = {
    "logreg": {"binary": (0.7305, 0.7092, 0.6529), "level": (0.7838, 0.6549, 0.3387)},
    "xgboost": {"binary": (0.7479, 0.7156, 0.6714), "level": (0.8031, 0.6596, 0.3752)},
    "lstm": {"binary": (0.7733, 0.7400, 0.7129), "level": (0.8234, 0.6803, 0.4199)},
    "hybrid_lstm": {"binary": (0.7821, 0.7441, 0.7122), "level": (0.8333, 0.6859, 0.4436)},
}


def _binary_row(m: dict) -> dict:
    per = m["per_class"]
    return {
        "ROC-AUC": m["roc_auc"], "accuracy": m["accuracy"], "precision (macro)": m["precision_macro"],
        "recall (macro)": m["recall_macro"], "F1 (macro)": m["f1_macro"],
        "F1 active": per["active"]["f1"], "F1 churned": per["churned"]["f1"],
        "precision churned": per["churned"]["precision"], "recall churned": per["churned"]["recall"],
    }


def _level_row(m: dict) -> dict:
    per = m["per_class"]
    return {
        "OvR AUC (macro)": m["roc_auc_ovr_macro"], "accuracy": m["accuracy"],
        "precision (macro)": m["precision_macro"], "recall (macro)": m["recall_macro"], "F1 (macro)": m["f1_macro"],
        **{f"AUC {n}": per[n]["roc_auc"] for n in LEVEL_NAMES},
        **{f"F1 {n}": per[n]["f1"] for n in LEVEL_NAMES},
    }


def comparison_table(model_metrics: dict[str, dict], target: str) -> pd.DataFrame:
    """Rows (model, protocol) with every metric of the target; ``model_metrics[family]`` is a model's
    ``metrics.json``."""
    row_of = _binary_row if target == "binary" else _level_row
    rows = [
        {"model": FAMILY_LABELS[family], "split": SCHEME_LABELS[scheme], **row_of(result["test"])}
        for family, metrics in model_metrics.items()
        for scheme, result in metrics["schemes"].items()
    ]
    return pd.DataFrame(rows)


HEADLINE = (
    ("binary AUC", "binary", "roc_auc"), ("binary accuracy", "binary", "accuracy"), ("binary F1", "binary", "f1_macro"),
    ("5-class OvR AUC", "level", "roc_auc_ovr_macro"), ("5-class accuracy", "level", "accuracy"),
    ("5-class macro F1", "level", "f1_macro"),
)


def headline_table(model_metrics: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """Ours next to the reference study's figures, in its six columns, random-split test set."""
    rows = []
    for family, label in FAMILY_LABELS.items():
        row = {"model": label}
        for i, (name, target, key) in enumerate(HEADLINE):
            row[name] = model_metrics[target][family]["schemes"]["random"]["test"][key]
            row[f"{name} (reference)"] = REFERENCE[family][target][i % 3]
        rows.append(row)
    return pd.DataFrame(rows)


def decisions_table(model_metrics: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """What the registry did with each model, in one line each (``champion_decision`` of its metrics.json)."""
    return pd.DataFrame([
        {"model": FAMILY_LABELS[family], "target": TARGET_LABELS[target],
         "registered version": metrics.get("registered_version") or "not registered",
         "decision": metrics.get("champion_decision", "")}
        for target, by_family in model_metrics.items() for family, metrics in by_family.items()
    ])


def comparison_figures(predictions: dict[str, dict[str, pd.DataFrame]], model_metrics: dict[str, dict[str, dict]],
                       out: Path) -> dict[str, Path]:
    """ROC comparison per target and protocol, per-class F1 bars, and each model's confusion matrix."""
    figures = {}
    for target, by_family in predictions.items():
        for scheme in SCHEME_LABELS:
            curves = {}
            for family, frame in by_family.items():
                rows = frame[frame["scheme"] == scheme]
                if rows.empty:  # the out-of-time protocol needs two cohorts
                    continue
                if target == "binary":
                    curves[FAMILY_LABELS[family]] = (rows["y"].to_numpy() == 1, rows["p"].to_numpy())
                else:
                    # Macro OvR is summarised by the Champion-vs-rest curve, the class a campaign targets.
                    curves[FAMILY_LABELS[family]] = (rows["y"].to_numpy() == 4, rows["p_4"].to_numpy())
            if not curves:
                continue
            what = "churned vs active" if target == "binary" else "Champion vs rest"
            name = f"roc_{target}_{scheme}"
            figures[name] = plots.plot_roc_comparison(
                curves, out / f"{name}.png", f"ROC, {what} ({SCHEME_LABELS[scheme]}, test)")
        classes = ["active", "churned"] if target == "binary" else list(LEVEL_NAMES)
        f1 = {c: {FAMILY_LABELS[f]: _nan_to_zero(m["schemes"]["random"]["test"]["per_class"][c]["f1"])
                  for f, m in model_metrics[target].items()} for c in classes}
        figures[f"f1_{target}"] = plots.plot_grouped_bars(
            f1, out / f"f1_per_class_{target}.png", f"Per-class F1, {target} target (random split, test)", "F1")
        for family, metrics in model_metrics[target].items():
            cm = metrics["schemes"]["random"]["test"]["confusion_matrix"]
            name = f"confusion_{family}_{target}"
            figures[name] = plots.plot_confusion_matrix(cm, classes, out / f"{name}.png",
                                                        f"{FAMILY_LABELS[family]}, {target} (random split, test)")
    return figures


def _nan_to_zero(x: float) -> float:
    return 0.0 if x is None or np.isnan(x) else float(x)
