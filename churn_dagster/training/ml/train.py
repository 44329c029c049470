"""The training loop: seeded, device-aware, with plateau LR halving, early stopping and best-weight restore.

Defaults are the SPEC's: :meth:`TrainConfig.lstm` (20 epochs at a constant lr) and
:meth:`TrainConfig.hybrid` (up to 50 epochs, lr halved on a validation-loss plateau, early stop). Both keep
the weights of the epoch with the lowest validation loss, because the test metrics should describe the
model that validation selected, not whichever epoch happened to be last.

On CUDA the forward pass runs under float16 autocast with a GradScaler. float16 rather than bfloat16:
PyTorch's autocast wrapper for cuDNN RNNs casts the LSTM to float16 whatever dtype autocast was given,
and the LSTM is most of the compute, so its float16 gradients need loss scaling either way. Evaluation and
prediction run in float32, so reported probabilities do not depend on the training precision.

Two optional hooks let a model bring its own regularisation without a loop of its own (DIGMN uses both):
``model.regularization()`` returns a scalar penalty that the training objective adds with weight
``config.penalty_weight``, and ``model.optimizer_groups(weight_decay)`` returns the optimizer's parameter
groups (e.g. some parameters exempt from weight decay). Reported losses, and so early stopping, are the
classification loss alone, on training and validation alike. A model trained for another task than churn
or the levels names its classes in ``model.class_names``, which the validation metrics then use.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from churn_dagster.domain.engagement import LEVEL_NAMES
from churn_dagster.stages.tensors.ml.data import SequenceDataset, make_loader, n_outputs
from churn_dagster.training.ml.hyperparameters import TrainConfig
from churn_dagster.training.ml.metrics import BINARY_NAMES, binary_metrics, multiclass_metrics
from churn_dagster.training.ml.networks import build_model

EpochCallback = Callable[[int, float, float, dict, float], None]


@dataclass(frozen=True)
class EpochRecord:
    """One epoch: mean per-user losses, the LR it trained with, and training throughput (users' sequences
    per second of the training pass, data loading included, so a slow loader shows up here too)."""

    epoch: int
    train_loss: float
    val_loss: float
    lr: float
    train_seconds: float
    sequences_per_second: float
    val_metrics: dict = field(repr=False)


@dataclass
class FitResult:
    model: nn.Module
    history: list[EpochRecord]
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    device: str

    def history_rows(self) -> list[dict]:
        """The history without the nested metrics, one flat dict per epoch (for tables and plots)."""
        return [{k: v for k, v in asdict(r).items() if k != "val_metrics"} for r in self.history]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices). Call it before building the model, so the initial
    weights are reproducible too; :func:`train_model` does."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _loss_fn(n_classes: int) -> nn.Module:
    # Summed so that epoch losses are exact per-user means whatever the batch sizes.
    return nn.BCEWithLogitsLoss(reduction="sum") if n_classes == 1 else nn.CrossEntropyLoss(reduction="sum")


def _probabilities(logits: torch.Tensor, n_classes: int) -> torch.Tensor:
    return torch.sigmoid(logits) if n_classes == 1 else torch.softmax(logits, dim=1)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean loss, probabilities and labels over ``loader``, in eval mode and float32."""
    model.eval()
    loss_fn, total, probs, labels = _loss_fn(model.n_classes), 0.0, [], []
    for batch in loader:
        batch = batch.to(device)
        logits = model(batch.seq, batch.lengths, batch.static).float()
        total += loss_fn(logits, batch.y).item()
        probs.append(_probabilities(logits, model.n_classes).cpu().numpy())
        labels.append(batch.y.cpu().numpy())
    y = np.concatenate(labels)
    return total / max(len(y), 1), np.concatenate(probs), y


def predict_proba(model: nn.Module, loader: DataLoader, device: torch.device | str | None = None) -> np.ndarray:
    """P(churn) ``[N]`` for a binary model, level probabilities ``[N, 5]`` (rows sum to 1) otherwise, in
    the loader's order (which is the dataset's when the loader does not shuffle)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    return evaluate(model, loader, device)[1]


def _metrics(y: np.ndarray, p: np.ndarray, model: nn.Module) -> dict:
    """Validation metrics under the model's ``class_names`` if it has them (the trend networks), else churn's
    two classes or the five levels."""
    if model.n_classes == 1:
        return binary_metrics(y, p, names=getattr(model, "class_names", BINARY_NAMES))
    return multiclass_metrics(y, p, getattr(model, "class_names", LEVEL_NAMES))


def _penalty(model: nn.Module, weight: float) -> torch.Tensor | float:
    """``weight * model.regularization()`` in float32, or 0 when the model has no such term."""
    if weight == 0 or not hasattr(model, "regularization"):
        return 0.0
    return weight * model.regularization().float()


def _optimizer_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    if hasattr(model, "optimizer_groups"):
        return model.optimizer_groups(weight_decay)
    return [{"params": list(model.parameters()), "weight_decay": weight_decay}]


def _train_epoch(model, loader, optimizer, scaler, device, use_amp, penalty_weight=0.0) -> tuple[float, int]:
    model.train()
    loss_fn, total, seen = _loss_fn(model.n_classes), 0.0, 0
    for batch in loader:
        batch = batch.to(device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            logits = model(batch.seq, batch.lengths, batch.static)
        loss = loss_fn(logits.float(), batch.y)
        scaler.scale(loss / len(batch.y) + _penalty(model, penalty_weight)).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.item()
        seen += len(batch.y)
    return total / max(seen, 1), seen


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    config: TrainConfig,
    device: torch.device | str | None = None,
    on_epoch: EpochCallback | None = None,
) -> FitResult:
    """Train ``model`` (binary if ``model.n_classes == 1``, else cross-entropy over the levels) and
    return it with the best-validation-loss weights loaded. ``on_epoch(epoch, train_loss, val_loss,
    val_metrics, lr)`` is called after each epoch (epochs count from 1).

    The global RNGs (dropout) and the training loader's shuffle generator are re-seeded from
    ``config.seed`` here; the initial weights are the caller's, so seed before building the model (as
    :func:`train_model` does) for a fully reproducible run."""
    seed_everything(config.seed)
    if train_loader.generator is not None:
        train_loader.generator.manual_seed(config.seed)
    device = torch.device(device) if device is not None else default_device()
    use_amp = config.amp and device.type == "cuda"
    model.to(device)
    optimizer = torch.optim.Adam(_optimizer_groups(model, config.weight_decay), lr=config.lr)
    scheduler = None
    if config.lr_decay_every is not None:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_decay_every, config.lr_decay_factor)
    if config.plateau_patience is not None:
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=config.plateau_factor, patience=config.plateau_patience,
            threshold=config.min_delta, threshold_mode="abs",
        )
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    history: list[EpochRecord] = []
    best_loss, best_epoch, best_state, since_best = float("inf"), 0, None, 0
    for epoch in range(1, config.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        train_loss, seen = _train_epoch(
            model, train_loader, optimizer, scaler, device, use_amp, config.penalty_weight)
        seconds = time.perf_counter() - start
        val_loss, val_p, val_y = evaluate(model, val_loader, device)
        metrics = _metrics(val_y, val_p, model)
        history.append(EpochRecord(epoch, train_loss, val_loss, lr, seconds, seen / max(seconds, 1e-9), metrics))
        if on_epoch is not None:
            on_epoch(epoch, train_loss, val_loss, metrics, lr)
        if val_loss < best_loss - config.min_delta:
            best_loss, best_epoch, since_best = val_loss, epoch, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            since_best += 1
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(val_loss)
        elif scheduler is not None:
            scheduler.step()
        if config.early_stop_patience is not None and since_best >= config.early_stop_patience:
            break
    if best_state is None:
        raise RuntimeError("validation loss was never finite; no weights to keep")
    model.load_state_dict(best_state)
    stopped_early = len(history) < config.epochs
    return FitResult(model, history, best_epoch, best_loss, stopped_early, str(device))


def train_model(
    kind: str,
    target: str,
    train_set: SequenceDataset,
    val_set: SequenceDataset,
    config: TrainConfig | None = None,
    device: torch.device | str | None = None,
    on_epoch: EpochCallback | None = None,
    **model_kwargs,
) -> FitResult:
    """Seed, build ``kind`` ("lstm" or "hybrid") for ``target`` and fit it: the entry point for assets.
    Without a ``config`` the SPEC defaults of that kind apply."""
    if train_set.target != target or val_set.target != target:
        raise ValueError(f"datasets were built for {train_set.target!r}/{val_set.target!r}, not {target!r}")
    config = config or (TrainConfig.hybrid() if kind == "hybrid" else TrainConfig.lstm())
    device = torch.device(device) if device is not None else default_device()
    seed_everything(config.seed)
    model_kwargs = {"n_features": train_set.sequence_dim, **model_kwargs}
    if kind == "hybrid":
        model_kwargs = {"n_static": train_set.static_dim, **model_kwargs}
    model = build_model(kind, n_outputs(target), **model_kwargs)
    pin = device.type == "cuda"
    train_loader = make_loader(train_set, config.batch_size, True, config.seed, config.num_workers, pin)
    val_loader = make_loader(val_set, config.batch_size, False, config.seed, config.num_workers, pin)
    return fit(model, train_loader, val_loader, config, device, on_epoch)
