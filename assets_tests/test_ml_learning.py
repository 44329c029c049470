"""Every model finds a planted signal: clearly better than chance on held-out users, for both targets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_ml_data import one_torch_thread, planted_thresholds, write_planted_cohort  # noqa: F401 (a fixture)

from churn_dagster.stages.tensors.ml.data import SequenceDataset, make_loader
from churn_dagster.training.ml import classical
from churn_dagster.training.ml.metrics import binary_metrics, multiclass_metrics
from churn_dagster.training.ml.train import TrainConfig, predict_proba, train_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MIN_AUC = 0.75


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("planted")
    kpi = write_planted_cohort(folder, n_users=2000, seed=0, max_len=24)
    return folder, kpi


def _auc(target: str, y: np.ndarray, p: np.ndarray) -> float:
    if target == "binary":
        assert p.shape == (len(y),) and ((p >= 0) & (p <= 1)).all()
        return binary_metrics(y, p)["roc_auc"]
    assert p.shape == (len(y), 5) and np.allclose(p.sum(axis=1), 1.0)
    return multiclass_metrics(y, p)["roc_auc_ovr_macro"]


@pytest.mark.parametrize("target", ["binary", "level"])
@pytest.mark.parametrize("kind", ["lstm", "hybrid"])
def test_networks_learn_the_planted_signal(planted, kind, target):
    folder, _ = planted
    thresholds = planted_thresholds(folder) if target == "level" else None
    train, val, test = (SequenceDataset(folder, target, split=s, thresholds=thresholds)
                        for s in ("train", "validation", "test"))
    config = (TrainConfig.lstm if kind == "lstm" else TrainConfig.hybrid)(epochs=5)
    result = train_model(kind, target, train, val, config, device="cpu")
    assert len(result.history) == 5 and 1 <= result.best_epoch <= 5
    assert all(r.sequences_per_second > 0 for r in result.history)
    p = predict_proba(result.model, make_loader(test, batch_size=256), "cpu")
    assert _auc(target, test.labels, p) > MIN_AUC


@pytest.mark.parametrize("target", ["binary", "level"])
def test_classical_models_learn_the_planted_signal(planted, target):
    folder, kpi = planted
    design = classical.kpi_design(kpi, pd.read_parquet(folder / "users.parquet"))
    y = design.target(target, planted_thresholds(folder))
    train, val, test = (design.rows(s) for s in ("train", "validation", "test"))
    lr = classical.fit_logistic(design.X[train], y[train])
    xgb = classical.fit_xgboost(design.X[train], y[train], design.X[val], y[val], classical.XGBConfig(n_jobs=1))
    assert 0 < xgb.best_iteration < classical.XGBConfig().n_estimators - 1  # early stopping chose it
    for model in (lr, xgb):
        assert _auc(target, y[test], classical.predict_proba(model, design.X[test], target)) > MIN_AUC


def test_kpi_features_exclude_keys_timestamps_and_labels(planted):
    folder, kpi = planted
    users = pd.read_parquet(folder / "users.parquet")
    joined = kpi.merge(users[["user_id", "churned", "frequency", "quality_raw"]], on="user_id")
    columns = classical.kpi_feature_columns(joined)
    assert columns == ["impressions", "impression_trend", "ctr", "age", "age_missing"]
    design = classical.kpi_design(kpi, users)
    assert list(design.X.columns) == columns and design.X["age"].isna().any()
    assert (design.user_id == users["user_id"].to_numpy()).all()
    with pytest.raises(ValueError, match="share only"):
        classical.kpi_design(kpi.iloc[1:], users)


def test_logistic_preprocessing_is_fit_on_the_training_rows_only(planted):
    folder, kpi = planted
    design = classical.kpi_design(kpi, pd.read_parquet(folder / "users.parquet"))
    train = design.rows("train")
    model = classical.fit_logistic(design.X[train], design.churned[train])
    assert np.allclose(model.named_steps["impute"].statistics_, design.X[train].median())
    assert np.allclose(model.named_steps["scale"].mean_, design.X[train].fillna(design.X[train].median()).mean())


def test_level_probabilities_keep_five_columns_when_a_level_is_missing_in_training(planted):
    folder, kpi = planted
    design = classical.kpi_design(kpi, pd.read_parquet(folder / "users.parquet"))
    level = design.target("level", planted_thresholds(folder))
    rows = design.rows("train") & (level != 3)
    model = classical.fit_logistic(design.X[rows], level[rows])
    p = classical.predict_proba(model, design.X[:10], "level")
    assert p.shape == (10, 5) and (p[:, 3] == 0).all() and np.allclose(p.sum(axis=1), 1)
    xgb = classical.fit_xgboost(design.X[rows], level[rows], design.X[rows], level[rows],
                                classical.XGBConfig(n_estimators=20, n_jobs=1), n_classes=5)
    p = classical.predict_proba(xgb, design.X[:10], "level")
    assert p.shape == (10, 5) and (p[:, 3] < 0.01).all() and np.allclose(p.sum(axis=1), 1)
