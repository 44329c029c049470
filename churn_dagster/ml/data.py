"""Sequence data for the networks: a Dataset over one or more cohorts' ragged, memory-mapped tensors.

The on-disk layout is written by :mod:`churn_dagster.transforms.tensors`: all sessions back to back in
``sequences.npy`` with ``offsets.npy`` marking where each user starts. Padding every user to 192 sessions
would cost gigabytes of zeros, so an item is read from the memory map on demand and a batch is padded only
to its own longest sequence (most users have far fewer than 192 sessions).

Memory maps are opened lazily in whichever process reads them and are not pickled, so the Dataset works in
DataLoader workers started by fork or spawn alike.
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

TARGETS = ("binary", "level")
N_LEVELS = 5
SEQUENCE_DIM = 24
STATIC_DIM = 18


def _remap(stored: dict, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    stored_mean, stored_std = np.asarray(stored["mean"]), np.asarray(stored["std"])
    return (stored_std / std).astype(np.float32), ((stored_mean - mean) / std).astype(np.float32)


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
    static: torch.Tensor  # [B, 18] float32
    y: torch.Tensor  # [B] float32 (binary) or int64 (level)

    def to(self, device: torch.device | str) -> Batch:
        non_blocking = torch.device(device).type == "cuda"
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in self))


@dataclass(frozen=True)
class Normalization:
    """Means and standard deviations that turn raw feature values (after the log1p and sin/cos transforms of
    the tensors asset) into a model's inputs. A model carries the statistics of *its* training rows, so
    cohorts standardised differently on disk, and the unstandardised scoring window, reach it on one scale."""

    seq_mean: np.ndarray
    seq_std: np.ndarray
    static_mean: np.ndarray
    static_std: np.ndarray

    def to_dict(self) -> dict:
        return {k: np.asarray(v).tolist() for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        return cls(**{k: np.asarray(d[k], dtype=np.float64) for k in ("seq_mean", "seq_std", "static_mean", "static_std")})


def _pool(means: list[np.ndarray], stds: list[np.ndarray], counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(counts, dtype=np.float64)[:, None]
    m, s = np.asarray(means), np.asarray(stds)
    mean = (w * m).sum(axis=0) / w.sum()
    var = (w * (s**2 + m**2)).sum(axis=0) / w.sum() - mean**2
    std = np.sqrt(np.clip(var, 0, None))
    return mean, np.where(std > 1e-12, std, 1.0)


def pooled_normalization(cohort_dirs: Sequence[str | Path]) -> Normalization:
    """The training statistics of several cohorts pooled, from each cohort's ``normalization.json``.

    Every labelled cohort stores its training split's mean, standard deviation and row counts, so the
    pooled moments follow exactly (law of total variance) without another pass over the data.
    """
    metas = [json.loads((Path(d) / "normalization.json").read_text()) for d in cohort_dirs]
    if any(m["train_users"] == 0 for m in metas):
        raise ValueError("every cohort of a training set needs training users")
    seq = _pool([m["sequence"]["mean"] for m in metas], [m["sequence"]["std"] for m in metas],
                [m["train_sessions"] for m in metas])
    static = _pool([m["static"]["mean"] for m in metas], [m["static"]["std"] for m in metas],
                   [m["train_users"] for m in metas])
    return Normalization(*seq, *static)


class _Cohort:
    """One cohort folder: small arrays loaded eagerly, the big ones memory-mapped on first use."""

    def __init__(self, folder: Path, target: Normalization | None = None):
        self.folder = folder
        self.offsets = np.load(folder / "offsets.npy")
        stored = json.loads((folder / "normalization.json").read_text())
        # Affine map from this cohort's stored scale to the target's: x' = x * scale + shift.
        self.seq_map = self.static_map = None
        if target is not None:
            self.seq_map = _remap(stored["sequence"], target.seq_mean, target.seq_std)
            self.static_map = _remap(stored["static"], target.static_mean, target.static_std)
        self.users = pd.read_parquet(folder / "users.parquet")
        n = len(self.users)
        if len(self.offsets) != n + 1 or not (self.users["row_idx"].to_numpy() == np.arange(n)).all():
            raise ValueError(f"{folder}: offsets.npy and users.parquet disagree on the users")
        self._sequences: np.ndarray | None = None
        self._static: np.ndarray | None = None

    @property
    def sequences(self) -> np.ndarray:
        if self._sequences is None:
            self._sequences = np.load(self.folder / "sequences.npy", mmap_mode="r")
        return self._sequences

    @property
    def static(self) -> np.ndarray:
        if self._static is None:
            self._static = np.load(self.folder / "static.npy", mmap_mode="r")
        return self._static

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_sequences": None, "_static": None}


class SequenceDataset(Dataset):
    """Users of one or more cohorts, concatenated in the order given, optionally restricted.

    With ``normalization``, every cohort's values are re-standardised onto that scale (see
    :class:`Normalization`); without it, values are used as stored (each cohort on its own scale).
    ``labelled=False`` serves users without labels (the scoring window); their ``y`` is a placeholder 0.

    ``split`` keeps the users of that split (or splits); ``index`` keeps the given positions of the
    concatenated user table (for custom or out-of-time selections). ``users`` holds the selected rows'
    metadata in item order, so predictions can be joined back to ``user_id``.
    """

    def __init__(
        self,
        cohort_dirs: Sequence[str | Path] | str | Path,
        target: str = "binary",
        split: str | Sequence[str] | None = None,
        index: np.ndarray | Sequence[int] | None = None,
        normalization: Normalization | None = None,
        labelled: bool = True,
    ):
        n_outputs(target)
        if split is not None and index is not None:
            raise ValueError("select rows by split or by index, not both")
        dirs = [cohort_dirs] if isinstance(cohort_dirs, (str, Path)) else list(cohort_dirs)
        if not dirs:
            raise ValueError("no cohort folders given")
        self.target = target
        self._cohorts = [_Cohort(Path(d), normalization) for d in dirs]
        all_users = pd.concat(
            [c.users.assign(cohort_pos=k) for k, c in enumerate(self._cohorts)], ignore_index=True
        )
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
        if not labelled:  # users to score: the label period has not happened yet
            self.labels = np.zeros(len(self.users), np.float32 if target == "binary" else np.int64)
        elif target == "binary":
            self.labels = self.users["churned"].to_numpy(np.float32)
        else:
            self.labels = self.users["level"].to_numpy(np.int64)

    def __len__(self) -> int:
        return len(self.users)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.generic]:
        cohort = self._cohorts[self._cohort_pos[i]]
        r = self._row[i]
        seq = np.array(cohort.sequences[cohort.offsets[r] : cohort.offsets[r + 1]], dtype=np.float32)
        static = np.array(cohort.static[r], dtype=np.float32)
        if cohort.seq_map is not None:
            seq = seq * cohort.seq_map[0] + cohort.seq_map[1]
            static = static * cohort.static_map[0] + cohort.static_map[1]
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
