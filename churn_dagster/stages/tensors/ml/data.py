"""Sequence data for the networks: a Dataset over one or more cohorts' ragged, memory-mapped tensors.

The on-disk layout is written by :mod:`churn_dagster.stages.tensors.sql.tensors`: all sessions back to back in
``sequences.npy`` with ``offsets.npy`` marking where each user starts, raw values (after log and sin/cos
transforms, NaN where a static value is missing), with each cohort's training-split moments in
``normalization.json``. Nothing there is fitted across users: a model fits its :class:`Normalization`
(imputation medians, means and standard deviations) on the training rows of *its* protocol, so a test
cohort never shapes its own inputs, and carries it to scoring.

Padding every user to 192 sessions would cost gigabytes of zeros, so an item is read from the memory map on
demand and a batch is padded only to its own longest sequence. A tensor folder is a link to a versioned
build; a cohort resolves it once and maps every file of that build at once, so a rebuild during training
can never mix two versions (the version replaced is kept until the next build).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from churn_dagster.domain.engagement import N_LEVELS, Thresholds, level_labels

TARGETS = ("binary", "level")
SEQUENCE_DIM = 24
# Width of the static vector with the default settings (18 when follow_count is switched on); a network takes
# the width of the tensors it is trained on.
STATIC_DIM = 17
# Label-period columns of users.parquet from which a protocol derives each user's level.
LABEL_COMPONENTS = ("churned", "frequency", "impressions", "quality_raw")


def n_outputs(target: str) -> int:
    """Output width of a network for ``target``: one logit for binary churn, five for the level."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    return 1 if target == "binary" else N_LEVELS


class Batch(NamedTuple):
    """A padded batch; ``mask`` is True on valid sessions. A NamedTuple so DataLoader can pin it."""

    seq: torch.Tensor  # [B, T, 24] float32, zeros on padding
    lengths: torch.Tensor  # [B] int64
    mask: torch.Tensor  # [B, T] bool
    static: torch.Tensor  # [B, S] float32
    y: torch.Tensor  # [B] float32 (binary) or int64 (level)

    def to(self, device: torch.device | str) -> Batch:
        non_blocking = torch.device(device).type == "cuda"
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in self))


@dataclass(frozen=True)
class Normalization:
    """What turns raw tensor values into a model's inputs, fit on one protocol's training rows: sequence
    means and standard deviations, static imputation medians, then static means and standard deviations."""

    seq_mean: np.ndarray
    seq_std: np.ndarray
    static_impute: np.ndarray
    static_mean: np.ndarray
    static_std: np.ndarray
    static_features: tuple[str, ...]

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else np.asarray(v).tolist()) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        arrays = {k: np.asarray(d[k], dtype=np.float64)
                  for k in ("seq_mean", "seq_std", "static_impute", "static_mean", "static_std")}
        return cls(**arrays, static_features=tuple(d["static_features"]))


def _safe_std(std: np.ndarray) -> np.ndarray:
    return np.where(std > 1e-12, std, 1.0)


class CohortTensors:
    """One cohort's build, resolved once: small arrays loaded, the big ones memory-mapped immediately (a
    mapped file stays readable even if a later build removes it)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).resolve(strict=True)  # the build the link points to now, once
        self.meta = json.loads((self.folder / "normalization.json").read_text())
        self.offsets = np.load(self.folder / "offsets.npy")
        self.users = pd.read_parquet(self.folder / "users.parquet")
        n = len(self.users)
        if len(self.offsets) != n + 1 or not (self.users["row_idx"].to_numpy() == np.arange(n)).all():
            raise ValueError(f"{self.folder}: offsets.npy and users.parquet disagree on the users")
        self._open()

    def _open(self) -> None:
        self.sequences = np.load(self.folder / "sequences.npy", mmap_mode="r")
        self.static = np.load(self.folder / "static.npy", mmap_mode="r")

    @property
    def static_features(self) -> tuple[str, ...]:
        return tuple(self.meta["static"]["features"])

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("sequences", "static")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open()


def _pooled_moments(metas: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over the union of the cohorts' training sessions, exactly, from each cohort's stored
    training mean, std and session count (law of total variance)."""
    counts = np.asarray([m["train_sessions"] for m in metas], dtype=np.float64)[:, None]
    means = np.asarray([m["sequence"]["train_mean"] for m in metas])
    stds = np.asarray([m["sequence"]["train_std"] for m in metas])
    mean = (counts * means).sum(axis=0) / counts.sum()
    var = (counts * (stds**2 + means**2)).sum(axis=0) / counts.sum() - mean**2
    return mean, np.sqrt(np.clip(var, 0, None))


def fit_normalization(cohorts: Sequence[CohortTensors]) -> Normalization:
    """The normalisation of a protocol whose training rows are the ``train`` split of ``cohorts``."""
    features = {c.static_features for c in cohorts}
    if len(features) != 1:
        raise ValueError(f"the cohorts were built with different static features: {sorted(features)}")
    metas = [c.meta for c in cohorts]
    if sum(m["train_sessions"] for m in metas) == 0:
        raise ValueError("no training user in these cohorts: nothing to fit the normalisation on")
    seq_mean, seq_std = _pooled_moments([m for m in metas if m["train_sessions"] > 0])
    static = np.concatenate([np.asarray(c.static[(c.users["split"] == "train").to_numpy()], np.float64) for c in cohorts])
    impute = np.nan_to_num(np.nanmedian(static, axis=0) if len(static) else np.zeros(static.shape[1]))
    filled = np.where(np.isnan(static), impute, static)
    return Normalization(seq_mean, _safe_std(seq_std), impute, filled.mean(axis=0), _safe_std(filled.std(axis=0)),
                         features.pop())


class SequenceDataset(Dataset):
    """Users of one or more cohorts, concatenated in the order given, optionally restricted.

    ``split`` keeps the users of that split (or splits); ``index`` keeps the given positions of the
    concatenated user table. ``users`` holds the selected rows' metadata in item order, so predictions can
    be joined back to ``user_id``. Labels: churn for ``"binary"``; for ``"level"``, the level of each user
    under ``thresholds`` (a protocol's, see :mod:`churn_dagster.domain.engagement`). ``labelled=False`` serves
    users without labels (the scoring window); their ``y`` is a placeholder 0. Without ``normalization``
    items are raw (missing static values as 0), which only tests and format checks want.
    """

    def __init__(
        self,
        cohort_dirs: Sequence[str | Path | CohortTensors] | str | Path,
        target: str = "binary",
        split: str | Sequence[str] | None = None,
        index: np.ndarray | Sequence[int] | None = None,
        normalization: Normalization | None = None,
        labelled: bool = True,
        thresholds: Thresholds | None = None,
    ):
        n_outputs(target)
        if split is not None and index is not None:
            raise ValueError("select rows by split or by index, not both")
        dirs = [cohort_dirs] if isinstance(cohort_dirs, (str, Path, CohortTensors)) else list(cohort_dirs)
        if not dirs:
            raise ValueError("no cohort folders given")
        self.target, self.normalization = target, normalization
        self._cohorts = [d if isinstance(d, CohortTensors) else CohortTensors(d) for d in dirs]
        if normalization is not None and self._cohorts[0].static_features != normalization.static_features:
            raise ValueError(f"the tensors' static features {self._cohorts[0].static_features} are not the ones "
                             f"this normalisation was fit on {normalization.static_features}")
        all_users = pd.concat([c.users.assign(cohort_pos=k) for k, c in enumerate(self._cohorts)], ignore_index=True)
        if split is not None:
            wanted = [split] if isinstance(split, str) else list(split)
            rows = np.flatnonzero(all_users["split"].isin(wanted).to_numpy())
        elif index is not None:
            rows = np.asarray(index, dtype=np.int64)
            if rows.size and (rows.min() < 0 or rows.max() >= len(all_users)):
                raise IndexError(f"index out of range for {len(all_users)} users")
        else:
            rows = np.arange(len(all_users))
        self.users = all_users.iloc[rows].reset_index(drop=True)
        self._cohort_pos = self.users["cohort_pos"].to_numpy(np.int64)
        self._row = self.users["row_idx"].to_numpy(np.int64)
        self.lengths = np.concatenate([np.diff(c.offsets) for c in self._cohorts])[rows]
        self.labels = self._labels(labelled, thresholds)

    def _labels(self, labelled: bool, thresholds: Thresholds | None) -> np.ndarray:
        if not labelled:  # users to score: the label period has not happened yet
            return np.zeros(len(self.users), np.float32 if self.target == "binary" else np.int64)
        if self.target == "binary":
            return self.users["churned"].to_numpy(np.float32)
        if thresholds is None:
            raise ValueError("level labels need the thresholds of the protocol's training users")
        return level_labels(self.users, thresholds)

    @property
    def static_dim(self) -> int:
        return len(self._cohorts[0].static_features)

    @property
    def sequence_dim(self) -> int:
        """Width of a step: 24 for NCM sessions, the event-log stage's daily steps their own."""
        return int(self._cohorts[0].sequences.shape[1])

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.generic]:
        cohort = self._cohorts[self._cohort_pos[i]]
        r = self._row[i]
        seq = np.array(cohort.sequences[cohort.offsets[r] : cohort.offsets[r + 1]], dtype=np.float32)
        static = np.array(cohort.static[r], dtype=np.float32)
        norm = self.normalization
        if norm is None:
            return seq, np.nan_to_num(static), self.labels[i]
        static = np.where(np.isnan(static), norm.static_impute, static)
        seq = ((seq - norm.seq_mean) / norm.seq_std).astype(np.float32)
        static = ((static - norm.static_mean) / norm.static_std).astype(np.float32)
        return seq, static, self.labels[i]


def collate(items: Sequence[tuple[np.ndarray, np.ndarray, np.generic]]) -> Batch:
    """Pad a list of items to the batch's longest sequence (zeros on padding; the models ignore them)."""
    lengths = torch.tensor([len(s) for s, _, _ in items], dtype=torch.int64)
    if (lengths < 1).any():
        raise ValueError("every user needs at least one session")
    width = items[0][0].shape[1]
    seq = torch.zeros(len(items), int(lengths.max()), width, dtype=torch.float32)
    for b, (s, _, _) in enumerate(items):
        seq[b, : len(s)] = torch.from_numpy(s)
    mask = torch.arange(seq.shape[1])[None, :] < lengths[:, None]
    static = torch.from_numpy(np.stack([st for _, st, _ in items]))
    y = torch.from_numpy(np.asarray([label for _, _, label in items]))
    return Batch(seq, lengths, mask, static, y)


def make_loader(
    dataset: Dataset,
    batch_size: int = 128,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader with :func:`collate`; shuffling draws from its own seeded generator, so the batch
    order is reproducible and independent of whatever else consumed the global RNG."""
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collate,
        generator=generator,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
