"""The DIGMN comparison (studies/trends/ml/experiments.py) on a small TrendData built by hand: every model trains for
both tasks through one entry point, a seed reproduces its result, only training rows are fitted, mean ± std
by hand, and the comparison table beside the paper."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from churn_dagster.studies.trends.ml.data import MacroScaling, TrendData
from churn_dagster.studies.trends.ml.experiments import TrendResult, summarize, train_trend_model
from churn_dagster.studies.trends.ml.hyperparameters import (
    CLASSICAL_MODELS,
    TREND_DEFAULTS,
    TREND_MODELS,
    TrendSeeds,
)
from churn_dagster.studies.trends.ml.networks import TrendDigmnNet
from churn_dagster.studies.trends.ml.report import comparison_table, display_table
from churn_dagster.training.ml.hyperparameters import TrainConfig, XGBConfig
from churn_dagster.training.ml.train import _optimizer_groups

EVENTS, DAYS, INTENTS = 4, 14, 3


def planted(n: int = 240, seed: int = 0) -> TrendData:
    """Users whose trend follows a macro feature and the slope of their daily activity (which also shifts
    their sessions' first behaviour channel); one macro feature has missing values."""
    rng = np.random.default_rng(seed)
    a, slope = rng.normal(size=n), rng.normal(size=n)
    macro = pd.DataFrame({"a": a, "b": rng.normal(size=n),
                          "c": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n))})
    t = np.arange(DAYS) - (DAYS - 1) / 2
    rate = np.clip(2 + 0.3 * slope[:, None] * t[None, :], 0.05, None)
    daily = rng.poisson(rate[:, :, None], size=(n, DAYS, EVENTS)).astype(np.float32)
    score = a + slope + 0.3 * rng.normal(size=n)
    counts = rng.integers(1, 6, size=n)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    behaviour = rng.random((offsets[-1], EVENTS + 2)).astype(np.float32)
    behaviour[:, 0] += np.repeat(slope, counts).astype(np.float32)
    users = pd.DataFrame({
        "user_id": [f"u{i}" for i in range(n)], "cohort_day": "2019-11-01",
        "split": np.array(["train", "train", "train", "validation", "test"])[np.arange(n) % 5],
        "day_trend": np.digitize(score, np.quantile(score, [0.45, 0.65])),
        "session_trend": (score < np.median(score)).astype(int),
    })
    session_counts = rng.poisson(2.0, size=(offsets[-1], EVENTS)).astype(np.float64)
    return TrendData(users, macro, daily, offsets, behaviour, rng.random((offsets[-1], INTENTS)).astype(np.float32),
                     session_counts, tuple(f"e{k}" for k in range(EVENTS)))


def small(model: str, epochs: int = 3) -> tuple:
    """The model's default hyperparameters with the networks capped at ``epochs`` and fewer boosting rounds."""
    def cap(p):
        if isinstance(p, TrainConfig):
            return replace(p, epochs=epochs)
        return replace(p, n_estimators=100) if isinstance(p, XGBConfig) else p
    return tuple(cap(p) for p in TREND_DEFAULTS[model])


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: a second thread only adds contention on a busy machine
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data() -> TrendData:
    return planted()


@pytest.mark.parametrize("model", TREND_MODELS)
def test_every_model_trains_for_both_tasks_with_the_papers_metrics(model, data):
    for task, classes, headline_key in (("day", ("decrease", "same", "increase"), "f1_macro"),
                                        ("session", ("not_decrease", "decrease"), "roc_auc")):
        epochs = []
        result = train_trend_model(model, task, data, 0, small(model), device="cpu",
                                   on_epoch=lambda epoch, *_, seen=epochs: seen.append(epoch))
        assert (result.model_name, result.task, result.seed) == (model, task, 0)
        assert result.users == {"train": 144, "validation": 48, "test": 48}
        for metrics in (result.val_metrics, result.test_metrics):
            assert tuple(metrics["per_class"]) == classes and 0 <= metrics["accuracy"] <= 1
            assert np.isfinite(metrics[headline_key]) and np.isfinite(metrics["f1_macro"])
        assert result.test_headline == result.test_metrics[headline_key]
        assert ("roc_auc_ovr_macro" in result.test_metrics) == (task == "day")
        if model in CLASSICAL_MODELS:
            assert result.scaling is None and epochs == [] and result.history == []
            assert (result.epochs is None) == (model != "mlp")
        else:
            assert isinstance(result.scaling, MacroScaling) and result.epochs == len(result.history) == 3
            assert epochs == [1, 2, 3]  # the per-epoch callback reached the shared loop
            assert tuple(result.history[0].keys())[:3] == ("epoch", "train_loss", "val_loss")


def test_the_planted_trend_is_learnt(data):
    result = train_trend_model("logreg", "session", data, 0, small("logreg"), device="cpu")
    assert result.test_headline > 0.8


@pytest.mark.parametrize("model", ["xgboost", "digmn"])
def test_a_seed_reproduces_its_result(model, data):
    first, again, other = (train_trend_model(model, "session", data, seed, small(model), device="cpu")
                           for seed in (1, 1, 2))
    assert first.val_metrics == again.val_metrics and first.test_metrics == again.test_metrics
    assert first.test_metrics["roc_auc"] != other.test_metrics["roc_auc"]


def test_digmn_brings_its_penalty_and_parameter_groups_to_the_loop(data):
    result = train_trend_model("digmn", "day", data, 0, small("digmn", epochs=1), device="cpu")
    assert isinstance(result.model, TrendDigmnNet) and result.model.regularization().item() >= 0
    _, spared = _optimizer_groups(result.model, 1e-5)
    assert spared["weight_decay"] == 0.0 and {id(p) for p in spared["params"]} == {
        id(p) for p in result.model.net.basis_parameters()}
    static = train_trend_model("digmn_static", "day", data, 0, small("digmn_static", epochs=1), device="cpu")
    assert static.model.net.meta is None and static.model.regularization().item() == 0.0


@pytest.mark.parametrize("model", ["logreg", "multichannel"])
def test_only_training_rows_are_fitted(model, data):
    """Test users with absurd macro features and flipped labels change nothing that was fitted, nor what
    validation selected."""
    test = data.rows("test")
    macro = data.macro.copy()
    macro.loc[test, ["a", "c"]] = 1e6
    users = data.users.copy()
    users.loc[test, "session_trend"] = 1 - users.loc[test, "session_trend"]
    changed = replace(data, users=users, macro=macro)
    before, after = (train_trend_model(model, "session", d, 0, small(model), device="cpu") for d in (data, changed))
    assert before.val_metrics == after.val_metrics
    if model == "logreg":
        for step in ("impute", "scale"):
            fitted = [before.model.named_steps[step], after.model.named_steps[step]]
            attribute = "statistics_" if step == "impute" else "mean_"
            np.testing.assert_array_equal(getattr(fitted[0], attribute), getattr(fitted[1], attribute))
    else:
        for field in ("medians", "means", "stds"):
            np.testing.assert_array_equal(getattr(before.scaling, field), getattr(after.scaling, field))
    assert before.test_metrics != after.test_metrics  # the test rows did change


def _result(model: str, task: str, seed: int, val: float, test: float, accuracy: float, other: float) -> TrendResult:
    metric, other_key = ("f1_macro", "roc_auc_ovr_macro") if task == "day" else ("roc_auc", "f1_macro")
    return TrendResult(model, task, seed, {metric: val}, {metric: test, "accuracy": accuracy, other_key: other},
                       seconds=2.0 * (seed + 1), epochs=None, model=None, scaling=None, users={})


def test_mean_and_std_over_seeds_by_hand():
    results = [_result("digmn", "day", 0, 0.5, 0.4, 0.6, 0.7), _result("digmn", "day", 1, 0.7, 0.6, 0.8, 0.9),
               _result("digmn", "session", 0, 0.55, 0.65, 0.5, 0.3)]
    table = summarize(results).set_index(["model", "task"])
    day = table.loc[("digmn", "day")]
    # mean of (0.4, 0.6) is 0.5; population std: sqrt(((0.4-0.5)^2 + (0.6-0.5)^2) / 2) = 0.1
    assert (day["seeds"], day["metric"], day["other_metric"]) == (2, "macro F1", "OvR AUROC (macro)")
    assert day["test_mean"] == pytest.approx(0.5) and day["test_std"] == pytest.approx(0.1)
    assert day["val_mean"] == pytest.approx(0.6) and day["val_std"] == pytest.approx(0.1)
    assert day["test_accuracy_mean"] == pytest.approx(0.7) and day["test_other_std"] == pytest.approx(0.1)
    assert day["seconds_mean"] == pytest.approx(3.0)
    session = table.loc[("digmn", "session")]
    assert (session["metric"], session["seeds"], session["test_mean"], session["test_std"]) == ("AUROC", 1, 0.65, 0.0)


def test_the_comparison_sits_beside_the_papers_linkedin_results():
    summaries = {("digmn", "day"): {"test_mean": 0.5, "test_std": 0.1, "seeds": 2},
                 ("digmn", "session"): {"test_mean": 0.61234, "test_std": 0.0, "seeds": 2}}
    table = comparison_table(summaries, {m: m.upper() for m in TREND_MODELS})
    assert list(table["model"]) == [m.upper() for m in TREND_MODELS]
    digmn = table.set_index("model").loc["DIGMN"]
    assert (digmn["day macro F1 (ours)"], digmn["day macro F1 (paper, LinkedIn)"]) == (0.5, 0.592)
    assert (digmn["session AUROC (paper, LinkedIn)"], digmn["paper source"]) == (0.655, "Table 3")
    static = table.set_index("model").loc["DIGMN_STATIC"]
    assert math.isnan(static["day macro F1 (ours)"]) and static["paper source"].startswith("Table 4")
    shown = display_table(table).set_index("model")
    assert shown.loc["DIGMN", "session AUROC (ours)"] == "0.612 ± 0.000"
    assert shown.loc["DIGMN", "day macro F1 (paper, LinkedIn)"] == "0.592 ± 0.001"
    assert shown.loc["MLP", "day macro F1 (ours)"] == "n/a"


def test_seeds_are_distinct_and_at_least_one():
    assert TrendSeeds().seeds == [0, 1, 2, 3, 4]
    for bad in ([], [1, 1]):
        with pytest.raises(ValueError, match="distinct"):
            TrendSeeds(bad)
