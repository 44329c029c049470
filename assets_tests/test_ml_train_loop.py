"""The training loop's mechanics: best-weight restore, early stopping, LR halving, callback, seeding."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch
from test_ml_data import one_torch_thread, write_planted_cohort  # noqa: F401 (a fixture)

from churn_dagster.stages.tensors.ml.data import SequenceDataset, make_loader
from churn_dagster.training.ml.networks import build_model
from churn_dagster.training.ml.train import (
    TrainConfig,
    evaluate,
    fit,
    seed_everything,
    train_model,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"hidden_size": 16}


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    """A small planted cohort, and a copy whose labels are flipped: validating on the flipped copy of the
    training users makes validation loss rise as training fits, so the best epoch comes early."""
    root = tmp_path_factory.mktemp("loop")
    write_planted_cohort(root / "real", n_users=400, seed=3, max_len=10)
    shutil.copytree(root / "real", root / "flipped")
    users = pd.read_parquet(root / "flipped" / "users.parquet")
    users["churned"] = ~users["churned"]
    users.to_parquet(root / "flipped" / "users.parquet", index=False)
    return root / "real", root / "flipped"


def _loaders(cohorts, flipped_validation: bool):
    real, flipped = cohorts
    train = SequenceDataset(real, split="train")
    val = SequenceDataset(flipped, split="train") if flipped_validation else SequenceDataset(real, split="validation")
    return make_loader(train, 32, shuffle=True, seed=0), make_loader(val, 64)


def _fit(cohorts, config: TrainConfig, flipped_validation: bool = True, **kwargs):
    seed_everything(config.seed)
    model = build_model("lstm", 1, **SMALL)
    train_loader, val_loader = _loaders(cohorts, flipped_validation)
    return fit(model, train_loader, val_loader, config, device="cpu", **kwargs), val_loader


def test_spec_defaults():
    lstm, hybrid = TrainConfig.lstm(), TrainConfig.hybrid()
    assert (lstm.epochs, lstm.batch_size, lstm.lr, lstm.plateau_patience, lstm.early_stop_patience) == (
        20, 128, 1e-3, None, None)
    assert (hybrid.epochs, hybrid.batch_size, hybrid.lr) == (50, 128, 1e-3)
    assert (hybrid.plateau_patience, hybrid.plateau_factor, hybrid.early_stop_patience, hybrid.min_delta) == (
        4, 0.5, 7, 1e-4)


def test_early_stopping_restores_the_best_validation_weights(cohorts):
    config = TrainConfig(epochs=30, lr=1e-2, early_stop_patience=3)
    result, val_loader = _fit(cohorts, config)
    losses = [r.val_loss for r in result.history]
    assert result.stopped_early and len(losses) == result.best_epoch + 3
    assert result.best_val_loss == min(losses) and losses[-1] > result.best_val_loss + 1e-4
    restored_loss = evaluate(result.model, val_loader, torch.device("cpu"))[0]
    assert restored_loss == pytest.approx(result.best_val_loss, abs=1e-6)


def test_an_improvement_smaller_than_min_delta_does_not_count(cohorts):
    config = TrainConfig(epochs=10, lr=1e-2, early_stop_patience=2, min_delta=10.0)
    result, _ = _fit(cohorts, config, flipped_validation=False)
    assert result.best_epoch == 1 and len(result.history) == 3


def test_lr_halves_on_a_plateau_and_the_callback_sees_every_epoch(cohorts):
    calls = []
    config = TrainConfig(epochs=7, plateau_patience=1)
    result, _ = _fit(cohorts, config, on_epoch=lambda *args: calls.append(args))
    # Replay torch's rule on the recorded losses: the LR halves once more than `patience` epochs in a
    # row failed to beat the best loss by min_delta; the recorded LR is the one each epoch trained with.
    expected, lr, best, bad = [], config.lr, float("inf"), 0
    for record in result.history:
        expected.append(lr)
        if record.val_loss < best - config.min_delta:
            best, bad = record.val_loss, 0
        else:
            bad += 1
        if bad > config.plateau_patience:
            lr, bad = lr * 0.5, 0
    lrs = [r.lr for r in result.history]
    assert lrs == pytest.approx(expected) and min(lrs) <= config.lr / 4
    assert [c[0] for c in calls] == list(range(1, 8))
    assert [(c[1], c[2], c[4]) for c in calls] == [(r.train_loss, r.val_loss, r.lr) for r in result.history]
    assert calls[0][3]["roc_auc"] == result.history[0].val_metrics["roc_auc"]


def test_same_seed_gives_the_same_weights(cohorts):
    real, _ = cohorts
    train, val = SequenceDataset(real, split="train"), SequenceDataset(real, split="validation")

    def weights(seed: int) -> dict:
        config = TrainConfig.hybrid(epochs=2, batch_size=32, seed=seed)
        return train_model("hybrid", "binary", train, val, config, device="cpu", **SMALL).model.state_dict()

    first, again, other = weights(7), weights(7), weights(8)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_datasets_must_match_the_target(cohorts):
    real, _ = cohorts
    with pytest.raises(ValueError, match="level"):
        train_model("lstm", "level", SequenceDataset(real), SequenceDataset(real), TrainConfig(epochs=1))
