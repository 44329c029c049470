"""The trend networks in the shared training loop's terms: batches with ``.seq/.lengths/.static/.y`` and a
model called as ``model(seq, lengths, static)``.

:mod:`churn_dagster.training.ml.train` has one loop (seeding, early stopping, best-weight restore, DIGMN's penalty and
parameter groups through the model's hooks); the trend networks read other inputs than the churn tensors, so
each gets a layout here instead of a loop of its own:

- ``activity_lstm``: ``seq`` is the daily event-type counts ``[B, days, E]`` (``lengths`` all ``days``);
- ``multichannel``: ``seq`` is the sessions' behaviour vectors, ``static`` the scaled macro features followed
  by the flattened daily counts, which :class:`TrendNet` splits again;
- ``digmn`` and ``digmn_static``: ``seq`` is behaviour then intents per session (DIGMN's own layout),
  ``static`` the scaled macro features.

A user without a session in the window reads one empty session rather than none (a packed LSTM cannot take
a length of 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from churn_dagster.studies.trends.ml.baselines import ActivityLSTM, MultiChannelNet
from churn_dagster.studies.trends.ml.data import TrendBatches, TrendData
from churn_dagster.studies.trends.ml.digmn import DIGMN, StaticDIGMN
from churn_dagster.training.ml.hyperparameters import DigmnConfig


class TrendBatch(NamedTuple):
    """A batch as :func:`churn_dagster.training.ml.train.fit` reads it."""

    seq: torch.Tensor
    lengths: torch.Tensor
    static: torch.Tensor
    y: torch.Tensor  # float32 for a binary task (one logit), int64 otherwise

    def to(self, device: torch.device | str) -> TrendBatch:
        return TrendBatch(*(t.to(device) for t in self))


class TrendNet(nn.Module):
    """One of the four trend networks behind the loop's call, with what scoring needs besides the weights:
    the task's class names (for the loop's validation metrics), the input layout and the session window."""

    def __init__(self, kind: str, net: nn.Module, class_names: Sequence[str], max_sessions: int, n_macro: int,
                 daily_shape: tuple[int, int]):
        super().__init__()
        self.kind, self.net, self.class_names = kind, net, tuple(class_names)
        self.n_classes = 1 if len(class_names) == 2 else len(class_names)
        self.max_sessions, self.n_macro, self.daily_shape = max_sessions, n_macro, tuple(daily_shape)

    def forward(self, seq: torch.Tensor, lengths: torch.Tensor, static: torch.Tensor) -> torch.Tensor:
        if self.kind == "activity_lstm":
            return self.net(seq)
        if self.kind == "multichannel":
            daily = static[:, self.n_macro:].reshape(-1, *self.daily_shape)
            return self.net(static[:, : self.n_macro], daily, seq, lengths)
        return self.net(seq, lengths, static)


class TrendDigmnNet(TrendNet):
    """DIGMN (or its static ablation) with the hooks the loop reads: the orthogonality penalty and the
    optimizer groups that spare the FC-D bases from weight decay."""

    def regularization(self) -> torch.Tensor:
        return self.net.regularization()

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        return self.net.optimizer_groups(weight_decay)


def build_network(kind: str, data: TrendData, class_names: Sequence[str], hidden_size: int = 32,
                  max_sessions: int = 192, digmn: DigmnConfig | None = None) -> TrendNet:
    """A fresh network of ``kind`` for the input widths of ``data`` (seed torch first for reproducible
    weights). ``hidden_size`` sizes the baselines' LSTMs, ``digmn`` the DIGMN networks."""
    n_macro, (days, n_events) = data.macro.shape[1], data.daily.shape[1:]
    n_classes = len(class_names)
    if kind == "activity_lstm":
        net = ActivityLSTM(n_events, hidden_size, n_classes)
    elif kind == "multichannel":
        net = MultiChannelNet(n_macro, n_events, data.behaviour.shape[1], hidden_size, n_classes)
    elif kind in ("digmn", "digmn_static"):
        shape = {k: v for k, v in (digmn or DigmnConfig()).kwargs().items() if k != "dynamic"}
        cls = DIGMN if kind == "digmn" else StaticDIGMN
        net = cls(data.behaviour.shape[1], data.intents.shape[1], n_macro, 1 if n_classes == 2 else n_classes, **shape)
        return TrendDigmnNet(kind, net, class_names, max_sessions, n_macro, (days, n_events))
    else:
        raise ValueError(f"no trend network {kind!r}")
    return TrendNet(kind, net, class_names, max_sessions, n_macro, (days, n_events))


class Collate:
    """Turns a list of row positions into the :class:`TrendBatch` of ``kind`` (a class, so that worker
    processes can pickle it)."""

    def __init__(self, batches: TrendBatches, kind: str, binary: bool):
        self.batches, self.kind, self.binary = batches, kind, binary

    def __call__(self, positions: list[int]) -> TrendBatch:
        b = self.batches.batch(np.asarray(positions))
        y = b["y"].float() if self.binary else b["y"]
        if self.kind == "activity_lstm":
            daily = b["daily"]
            return TrendBatch(daily, torch.full((len(daily),), daily.shape[1]), b["macro"], y)
        lengths = b["lengths"].clamp(min=1)
        if self.kind == "multichannel":
            return TrendBatch(b["behaviour"], lengths, torch.cat([b["macro"], b["daily"].flatten(1)], dim=1), y)
        return TrendBatch(torch.cat([b["behaviour"], b["intents"]], dim=-1), lengths, b["macro"], y)


def trend_loader(batches: TrendBatches, model: TrendNet, batch_size: int, shuffle: bool = False, seed: int = 0,
                 num_workers: int = 0) -> DataLoader:
    """Batches of ``batches``' rows in ``model``'s layout; shuffled by a seeded generator (which the loop
    re-seeds from its config) when ``shuffle``."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(range(len(batches)), batch_size=batch_size, shuffle=shuffle, generator=generator,
                      collate_fn=Collate(batches, model.kind, model.n_classes == 1), num_workers=num_workers)
