"""Why a model predicts what it does: SHAP for XGBoost, standardised coefficients for the logistic
regression, and the hybrid network's attention over a user's sessions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import shap
import torch
from matplotlib.colors import Normalize
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier

from churn_dagster.stages.tensors.ml.data import SequenceDataset, collate
from churn_dagster.training.ml.networks import HybridLSTM
from churn_dagster.training.ml.plots import new_figure, plot_bars, save


@dataclass(frozen=True)
class ShapSummary:
    """``values`` are log-odds (margin) contributions: ``[N, F]`` for a binary model, ``[N, F, K]`` for
    the levels. ``importance`` is mean |SHAP| per feature (over rows, and over classes for the levels),
    sorted descending, with one extra column per class for the levels."""

    values: np.ndarray
    expected_value: np.ndarray
    rows: pd.DataFrame
    importance: pd.DataFrame

    def top(self, k: int = 20) -> pd.DataFrame:
        return self.importance.head(k)


def xgboost_shap(
    model: XGBClassifier, X: pd.DataFrame, class_names: Sequence[str] | None = None,
    max_rows: int = 5000, seed: int = 0,
) -> ShapSummary:
    """TreeSHAP on (a seeded sample of at most ``max_rows`` rows of) ``X``.

    Early stopping keeps the trees grown after the best iteration inside the booster, while
    ``predict_proba`` ignores them; the explainer gets the booster cut at the best iteration, so the
    SHAP values add up to the predictions that are actually served.
    """
    rows = X if len(X) <= max_rows else X.sample(max_rows, random_state=seed)
    booster = model.get_booster()
    best = getattr(model, "best_iteration", None)
    if best is not None:
        booster = booster[: best + 1]
    explainer = shap.TreeExplainer(booster)
    values = np.asarray(explainer.shap_values(rows))
    mean_abs = np.abs(values).mean(axis=0)  # [F] or [F, K]
    importance = pd.DataFrame({"mean_abs_shap": mean_abs if mean_abs.ndim == 1 else mean_abs.mean(axis=1)},
                              index=pd.Index(X.columns, name="feature"))
    if mean_abs.ndim == 2:
        names = class_names or [str(k) for k in range(mean_abs.shape[1])]
        for k, name in enumerate(names):
            importance[f"mean_abs_shap_{name}"] = mean_abs[:, k]
    importance = importance.sort_values("mean_abs_shap", ascending=False)
    return ShapSummary(values, np.atleast_1d(explainer.expected_value), rows, importance)


def plot_shap_importance(summary: ShapSummary, path: str | Path, k: int = 20,
                         title: str = "XGBoost: mean |SHAP| (top features)") -> Path:
    top = summary.top(k)
    return plot_bars(top["mean_abs_shap"].tolist(), top.index.tolist(), path, title, "mean |SHAP| (log-odds)")


def logistic_coefficients(model: Pipeline, feature_names: Sequence[str],
                          class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Coefficients of the Pipeline's logistic regression. They are *standardised* (change in log-odds
    per training standard deviation of the feature) because the Pipeline scales its inputs, so their
    sizes are comparable across features. One ``coef`` column for a binary model, one per class for the
    levels; sorted by the largest absolute value."""
    lr = model.named_steps["model"]
    coef = lr.coef_
    if coef.shape[0] == 1:
        table = pd.DataFrame({"coef": coef[0]}, index=pd.Index(feature_names, name="feature"))
    else:
        names = [class_names[int(c)] if class_names else str(c) for c in lr.classes_]
        table = pd.DataFrame(coef.T, index=pd.Index(feature_names, name="feature"), columns=names)
    table["max_abs"] = table.abs().max(axis=1)
    return table.sort_values("max_abs", ascending=False)


def plot_coefficients(table: pd.DataFrame, path: str | Path, k: int = 20,
                      title: str = "Logistic regression: standardised coefficients") -> Path:
    """Signed bars for a binary model; for the levels the largest absolute coefficient per feature."""
    top = table.head(k)
    values = top["coef"] if "coef" in top else top["max_abs"]
    label = "coefficient (per training SD)" if "coef" in top else "max |coefficient| over classes"
    return plot_bars(values.tolist(), top.index.tolist(), path, title, label)


@dataclass(frozen=True)
class AttentionSample:
    """Attention of the hybrid for a sample of users: ``weights [n, T]`` over each user's sessions, oldest
    first, 0 beyond ``lengths``; each row sums to 1. ``proba`` is the model's output for the same users
    (P(churn) ``[n]`` or level probabilities ``[n, K]``)."""

    user_ids: np.ndarray
    lengths: np.ndarray
    weights: np.ndarray
    proba: np.ndarray


@torch.no_grad()
def attention_weights(model: HybridLSTM, dataset: SequenceDataset, indices: Sequence[int],
                      device: torch.device | str | None = None) -> AttentionSample:
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).eval()
    batch = collate([dataset[int(i)] for i in indices]).to(device)
    logits, weights = model(batch.seq, batch.lengths, batch.static, return_attention=True)
    proba = torch.sigmoid(logits) if model.n_classes == 1 else torch.softmax(logits.float(), dim=1)
    return AttentionSample(
        user_ids=dataset.users["user_id"].to_numpy()[np.asarray(indices, dtype=np.int64)],
        lengths=batch.lengths.cpu().numpy(),
        weights=weights.float().cpu().numpy(),
        proba=proba.float().cpu().numpy(),
    )


def plot_attention(sample: AttentionSample, path: str | Path,
                   title: str = "Hybrid LSTM: attention over sessions") -> Path:
    """Heatmap with one row per user, right-aligned so the last column is every user's most recent
    session (recency is what the rows share; absolute positions are not comparable across users).
    Cells without a session are blank."""
    n, width = sample.weights.shape
    grid = np.full((n, width), np.nan)
    for i, length in enumerate(sample.lengths):
        grid[i, width - length:] = sample.weights[i, :length]
    fig = new_figure(8, 0.25 * n + 1.8)
    ax = fig.add_subplot()
    image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest",
                      norm=Normalize(vmin=0, vmax=float(np.nanmax(grid))))
    ticks = np.linspace(0, width - 1, num=min(width, 6)).round().astype(int)
    ax.set_xticks(ticks, [str(width - 1 - t) for t in ticks])
    ax.set_xlabel("sessions before the most recent one")
    ax.set_yticks(range(n), [str(u) for u in sample.user_ids], fontsize=7)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="attention weight")
    return save(fig, path)
