"""Training talks: every epoch of a sequence model leaves one progress line with its losses, its validation
AUC and its seconds, and the same curves in MLflow."""

import time

import mlflow
import pytest

from churn_dagster.training.mlflow_logging import epoch_logger


@pytest.fixture(autouse=True)
def tracking(tmp_path):
    """A store of this test's own; the process-wide tracking URI is restored afterwards."""
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield
    mlflow.set_tracking_uri(before)


def test_one_line_per_epoch_with_loss_auc_and_seconds():
    lines: list[str] = []
    log = epoch_logger("binary", lines.append, "lstm_churn (random)")
    with mlflow.start_run() as run:
        time.sleep(0.25)
        log(1, 0.6931, 0.65, {"roc_auc": 0.71}, 1e-3)
        log(2, 0.61, 0.6, {"roc_auc": 0.7345}, 1e-3)
    assert len(lines) == 2
    assert lines[0].startswith("lstm_churn (random) epoch 1: train loss 0.6931, val loss 0.6500, val AUC 0.7100, ")
    first, second = (float(line.rsplit(", ", 1)[1].removesuffix(" s")) for line in lines)
    assert first >= 0.2 and second < first  # the seconds of each epoch, not since the start
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_auc_epoch")
    assert [(m.step, m.value) for m in history] == [(1, 0.71), (2, 0.7345)]


def test_without_a_sink_it_only_logs_to_mlflow():
    log = epoch_logger("level", None)
    with mlflow.start_run() as run:
        log(1, 1.2, 1.1, {"roc_auc_ovr_macro": 0.8}, 1e-3)
    assert mlflow.MlflowClient().get_run(run.info.run_id).data.metrics["val_auc_epoch"] == pytest.approx(0.8)
