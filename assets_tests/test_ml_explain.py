"""Explanations (SHAP, coefficients, attention) and the PNG figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_ml_data import one_torch_thread, planted_thresholds, write_planted_cohort  # noqa: F401 (a fixture)

from churn_dagster.domain.engagement import LEVEL_NAMES
from churn_dagster.stages.tensors.ml.data import SequenceDataset, make_loader
from churn_dagster.studies.churn.ml import explain
from churn_dagster.training.ml import classical, plots
from churn_dagster.training.ml.metrics import binary_metrics, multiclass_metrics
from churn_dagster.training.ml.train import TrainConfig, predict_proba, train_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG_MAGIC) and len(data) > 2000


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("explain")
    kpi = write_planted_cohort(folder, n_users=1200, seed=5, max_len=16)
    design = classical.kpi_design(kpi, pd.read_parquet(folder / "users.parquet"))
    design.labels["level"] = design.target("level", planted_thresholds(folder))
    return folder, design


def _xgb(design, target):
    y = design.churned if target == "binary" else design.labels["level"].to_numpy()
    train, val = design.rows("train"), design.rows("validation")
    return classical.fit_xgboost(design.X[train], y[train], design.X[val], y[val], classical.XGBConfig(n_jobs=1))


@pytest.mark.parametrize("target", ["binary", "level"])
def test_shap_adds_up_to_the_served_margin_and_ranks_the_planted_feature_first(planted, tmp_path, target):
    _, design = planted
    model = _xgb(design, target)
    summary = explain.xgboost_shap(model, design.X, class_names=LEVEL_NAMES, max_rows=500)
    rows = summary.rows
    assert len(rows) == 500
    margin = model.predict(rows, output_margin=True)  # at the best iteration, like predict_proba
    values = summary.values
    if target == "binary":
        assert values.shape == (500, design.X.shape[1])
        assert np.allclose(values.sum(axis=1) + summary.expected_value[0], margin, atol=1e-3)
    else:
        assert values.shape == (500, design.X.shape[1], 5)
        assert np.allclose(values.sum(axis=1) + summary.expected_value[None, :], margin, atol=1e-3)
        assert "mean_abs_shap_Champion" in summary.importance
    assert summary.top(2).index[0] == "impression_trend"
    assert _is_png(explain.plot_shap_importance(summary, tmp_path / "shap.png", k=3))


def test_logistic_coefficients_are_standardised_and_signed(planted, tmp_path):
    _, design = planted
    train = design.rows("train")
    binary = classical.fit_logistic(design.X[train], design.churned[train])
    table = explain.logistic_coefficients(binary, list(design.X.columns))
    assert table.index[0] == "impression_trend" and table.loc["impression_trend", "coef"] < 0
    assert table.loc["age", "coef"] < 0  # age carries the planted trait, which lowers churn
    assert _is_png(explain.plot_coefficients(table, tmp_path / "coef.png"))
    level = classical.fit_logistic(design.X[train], design.labels["level"].to_numpy()[train])
    table = explain.logistic_coefficients(level, list(design.X.columns), LEVEL_NAMES)
    assert list(table.columns) == [*LEVEL_NAMES, "max_abs"]
    assert table.loc["impression_trend", "Champion"] > 0 > table.loc["impression_trend", "Churned"]
    assert _is_png(explain.plot_coefficients(table, tmp_path / "coef_level.png"))


def test_attention_sample_and_heatmap(planted, tmp_path):
    folder, _ = planted
    train, val = SequenceDataset(folder, split="train"), SequenceDataset(folder, split="validation")
    result = train_model("hybrid", "binary", train, val, TrainConfig.hybrid(epochs=1), device="cpu",
                         hidden_size=16)
    picks = [0, 3, 5, 8, 13]
    sample = explain.attention_weights(result.model, val, picks)
    assert list(sample.user_ids) == list(val.users["user_id"].iloc[picks])
    assert (sample.lengths == val.lengths[picks]).all()
    steps = np.arange(sample.weights.shape[1])[None, :]
    assert (sample.weights[steps >= sample.lengths[:, None]] == 0).all()
    assert np.allclose(sample.weights.sum(axis=1), 1, atol=1e-6)
    served = predict_proba(result.model, make_loader(val, 64), "cpu")[picks]
    assert np.allclose(sample.proba, served, atol=1e-6)
    assert _is_png(explain.plot_attention(sample, tmp_path / "attention.png"))
    rows = result.history_rows()
    assert set(rows[0]) == {"epoch", "train_loss", "val_loss", "lr", "train_seconds", "sequences_per_second"}
    assert _is_png(plots.plot_learning_curves(rows, tmp_path / "curves.png", best_epoch=result.best_epoch))


def test_evaluation_figures(planted, tmp_path):
    _, design = planted
    test = design.rows("test")
    rng = np.random.default_rng(0)
    p = np.clip(design.churned[test] * 0.4 + rng.random(test.sum()) * 0.6, 0, 1)
    m = binary_metrics(design.churned[test], p)
    assert _is_png(plots.plot_confusion_matrix(m["confusion_matrix"], m["class_names"], tmp_path / "cm.png"))
    assert _is_png(plots.plot_roc_curves(design.churned[test], p, m["class_names"], tmp_path / "roc.png"))
    assert _is_png(plots.plot_class_metrics(m, tmp_path / "bars.png"))
    proba = rng.dirichlet(np.ones(5), size=int(test.sum()))
    y = design.labels["level"].to_numpy()[test].copy()
    y[y == 4] = 3  # an absent class must not break the figures
    mm = multiclass_metrics(y, proba)
    assert _is_png(plots.plot_confusion_matrix(mm["confusion_matrix"], LEVEL_NAMES, tmp_path / "nested" / "cm5.png"))
    assert _is_png(plots.plot_roc_curves(y, proba, LEVEL_NAMES, tmp_path / "roc5.png"))
    assert _is_png(plots.plot_class_metrics(mm, tmp_path / "bars5.png"))
