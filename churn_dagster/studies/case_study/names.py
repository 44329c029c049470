"""Names the case-study wiring shares: its model families, their asset and registered-model names, and where a
model asset keeps its files (read by the report). A module of its own so the training body, imported when a step
runs, needs nothing from the asset definitions."""

from pathlib import Path

from churn_dagster.storage.lake import Lake

FAMILY_LABELS = {
    "svm": "Linear SVM with calibrated probabilities",
    "naive_bayes": "Gaussian naive Bayes",
    "decision_tree": "Decision tree",
    "mlp": "MLP",
}


def asset_name(family: str) -> str:
    return f"case_study_{family}"


def registered_name(family: str, variant: str) -> str:
    """Each variant is its own registered model, with its own champion."""
    return asset_name(family) + ("_upsampled" if variant == "upsampled" else "")


def model_folder(lake: Lake, family: str) -> Path:
    return lake.root / "case_study" / "models" / asset_name(family)
