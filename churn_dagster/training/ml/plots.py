"""Evaluation figures as PNG files: confusion matrix, ROC curves, per-class bars, learning curves, intents.

Figures are built as ``matplotlib.figure.Figure`` objects drawn by the Agg canvas, never through pyplot:
pyplot keeps global state (current figure, backend choice) that is unsafe in a long-lived, multi-threaded
orchestrator process, and Agg needs no display. Each function writes one file and returns its path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import auc, roc_curve


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_confusion_matrix(cm: Sequence[Sequence[int]], class_names: Sequence[str], path: str | Path,
                          title: str = "Confusion matrix") -> Path:
    """Cells coloured by the share of each true class (row) and labelled with count and share, so a
    rare class's errors stay visible next to a dominant one."""
    cm = np.asarray(cm, dtype=np.int64)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    k = len(class_names)
    fig = new_figure(1.2 * k + 2.5, 1.1 * k + 1.5)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{cm[i, j]:,}\n{share[i, j]:.0%}", ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(k), class_names, rotation=30, ha="right")
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of true class")
    return save(fig, path)


def plot_roc_curves(y_true: Sequence[int], proba: np.ndarray, class_names: Sequence[str], path: str | Path,
                    title: str = "ROC") -> Path:
    """One curve for binary probabilities ``[N]`` (positive class = ``class_names[1]``); one
    one-vs-rest curve per class for ``[N, K]``, skipping classes with no positive or no negative."""
    y = np.asarray(y_true).astype(np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    curves = [(class_names[1], y == 1, proba)] if proba.ndim == 1 else [
        (name, y == k, proba[:, k]) for k, name in enumerate(class_names)
    ]
    drawable = {name: (positive, score) for name, positive, score in curves
                if positive.any() and not positive.all()}
    return plot_roc_comparison(drawable, path, title)


def plot_class_metrics(metrics: dict, path: str | Path, title: str = "Per-class metrics") -> Path:
    """Grouped precision / recall / F1 bars from the ``per_class`` part of a metrics dict
    (:mod:`churn_dagster.training.ml.metrics`); undefined (NaN) values are drawn as missing bars."""
    per_class = metrics["per_class"]
    names = list(per_class)
    kinds = ("precision", "recall", "f1")
    x = np.arange(len(names))
    width = 0.8 / len(kinds)
    fig = new_figure(1.3 * len(names) + 3, 4)
    ax = fig.add_subplot()
    for i, kind in enumerate(kinds):
        values = [per_class[n][kind] for n in names]
        ax.bar(x + (i - 1) * width, values, width, label=kind)
    ax.set_xticks(x, [f"{n}\n(n={per_class[n]['support']:,})" for n in names])
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_learning_curves(history: Sequence[dict], path: str | Path, best_epoch: int | None = None,
                         title: str = "Learning curves") -> Path:
    """Training and validation loss per epoch from rows with ``epoch``, ``train_loss``, ``val_loss`` and
    ``lr`` (``FitResult.history_rows()``); the learning rate on a log axis on the right shows when the
    plateau schedule halved it, and a vertical line marks the epoch whose weights were kept."""
    epochs = [r["epoch"] for r in history]
    fig = new_figure(6.5, 4)
    ax = fig.add_subplot()
    ax.plot(epochs, [r["train_loss"] for r in history], marker="o", markersize=3, label="train loss")
    ax.plot(epochs, [r["val_loss"] for r in history], marker="o", markersize=3, label="validation loss")
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    lr_ax = ax.twinx()
    lr_ax.step(epochs, [r["lr"] for r in history], where="post", color="tab:green", alpha=0.5, label="lr")
    lr_ax.set_yscale("log")
    lr_ax.set_ylabel("learning rate")
    handles = ax.get_legend_handles_labels()
    lr_handles = lr_ax.get_legend_handles_labels()
    ax.legend(handles[0] + lr_handles[0], handles[1] + lr_handles[1], fontsize=8)
    return save(fig, path)


def plot_bars(values: Sequence[float], labels: Sequence[str], path: str | Path, title: str,
              xlabel: str) -> Path:
    """Horizontal bars, first item on top: used for feature importances and coefficients."""
    fig = new_figure(7, 0.3 * len(values) + 1.5)
    ax = fig.add_subplot()
    y = np.arange(len(values))[::-1]
    ax.barh(y, values, color=["tab:red" if v < 0 else "tab:blue" for v in values])
    ax.set_yticks(y, labels, fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return save(fig, path)


def plot_roc_comparison(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str) -> Path:
    """One ROC curve per model on the same test users: ``curves[name] = (is_positive, score)``."""
    fig = new_figure(5.5, 5)
    ax = fig.add_subplot()
    for name, (positive, score) in curves.items():
        fpr, tpr, _ = roc_curve(positive, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return save(fig, path)


def plot_grouped_bars(values: dict[str, dict[str, float]], path: str | Path, title: str, ylabel: str) -> Path:
    """``values[group][series]``: one cluster per group (e.g. class), one bar per series (e.g. model)."""
    groups = list(values)
    series = list(next(iter(values.values())))
    x = np.arange(len(groups))
    width = 0.8 / len(series)
    fig = new_figure(1.4 * len(groups) + 3, 4)
    ax = fig.add_subplot()
    for i, name in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, [values[g][name] for g in groups], width, label=name)
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_histogram(values: Sequence[float], path: str | Path, title: str, xlabel: str, bins: int = 20) -> Path:
    fig = new_figure(6, 3.5)
    ax = fig.add_subplot()
    ax.hist(np.asarray(values, dtype=np.float64), bins=bins, range=(0, 1), color="tab:blue", edgecolor="white")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("users")
    ax.set_title(title)
    return save(fig, path)


def plot_perplexity_curve(perplexity: dict[int, float], chosen_k: int, path: str | Path,
                          title: str = "Held-out perplexity by number of intents") -> Path:
    """LDA's held-out perplexity for each K tried (:class:`churn_dagster.studies.trends.ml.intents.IntentModel`), the chosen
    K marked."""
    ks = sorted(perplexity)
    fig = new_figure(6, 4)
    ax = fig.add_subplot()
    ax.plot(ks, [perplexity[k] for k in ks], marker="o")
    ax.plot([chosen_k], [perplexity[chosen_k]], marker="o", markersize=12, fillstyle="none", color="tab:red",
            linestyle="none", label=f"chosen K = {chosen_k}")
    ax.set_xticks(ks)
    ax.set_xlabel("number of intents K")
    ax.set_ylabel("held-out perplexity")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_intent_heatmap(topics: np.ndarray, event_names: Sequence[str], path: str | Path,
                        title: str = "Event weights of each intent") -> Path:
    """Intents (rows) × event types (columns), each cell labelled with the event's weight in the intent."""
    topics = np.asarray(topics, dtype=np.float64)
    k, n_events = topics.shape
    fig = new_figure(0.8 * n_events + 2.5, 0.5 * k + 2)
    ax = fig.add_subplot()
    image = ax.imshow(topics, cmap="Blues", vmin=0, vmax=max(topics.max(), 1e-9), aspect="auto")
    for i in range(k):
        for j in range(n_events):
            ax.text(j, i, f"{topics[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if topics[i, j] > 0.6 * topics.max() else "black")
    ax.set_xticks(range(n_events), event_names, rotation=30, ha="right")
    ax.set_yticks(range(k), [f"intent {i}" for i in range(k)])
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="weight")
    return save(fig, path)
