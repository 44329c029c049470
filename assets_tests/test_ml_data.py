"""The sequence Dataset and collate over tensors in the on-disk format, plus the planted-signal cohort
writer that the other ``test_ml_*`` modules import."""

from __future__ import annotations

import json
import pickle
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from churn_dagster.ml.classical import kpi_design
from churn_dagster.ml.data import STATIC_DIM, SequenceDataset, collate, make_loader
from churn_dagster.ml.models import HybridLSTM, LSTMClassifier
from churn_dagster.transforms.labels import SplitSettings
from conftest import CALENDAR, Imp, write_impressions, write_snapshots
from pipeline_helpers import build_all_tensors, build_cohort_graph, ingest_folder

TREND_COL = 11  # total_impressions in the real feature order
LEVEL_CUTS = (0.55, 0.72, 0.85, 0.94)  # score quantiles between the five levels; level 0 is "churned"


def write_planted_cohort(folder: Path, n_users: int = 3000, seed: int = 0, max_len: int = 40,
                         cohort: date = date(2019, 11, 1)) -> pd.DataFrame:
    """Write a cohort in the exact tensor format of ``transforms.tensors`` and return its KPI table.

    A hidden slope drives one sequence column over each user's sessions (the column's mean says nothing:
    only its *trend* does) and a hidden trait is static feature 0. The engagement score mixes both, so a
    sequence-only model can reach the slope, the hybrid both, and the KPI table carries noisy summaries of
    each. ``last_impression_ms`` is made to leak the label: it must never be used as a feature.
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, max_len + 1, n_users)
    slope, trait = rng.normal(size=n_users), rng.normal(size=n_users)
    score = 1.5 * slope + 0.8 * trait + 0.3 * rng.normal(size=n_users)
    level = np.digitize(score, np.quantile(score, LEVEL_CUTS))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    seq = rng.normal(size=(offsets[-1], 24)).astype(np.float32)
    for i in range(n_users):
        position = np.linspace(-1.0, 1.0, lengths[i])
        seq[offsets[i] : offsets[i + 1], TREND_COL] = slope[i] * position + 0.3 * rng.normal(size=lengths[i])
    static = rng.normal(size=(n_users, STATIC_DIM)).astype(np.float32)
    static[:, 0] = trait
    split = rng.choice(["train", "validation", "test"], size=n_users, p=[0.7, 0.15, 0.15])
    user_ids = [f"u{seed}_{i:05d}" for i in range(n_users)]
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "sequences.npy", seq)
    np.save(folder / "offsets.npy", offsets)
    np.save(folder / "static.npy", static)
    users = pd.DataFrame({
        "row_idx": np.arange(n_users, dtype=np.int64), "user_id": user_ids, "cohort_day": cohort,
        "split": split, "churned": level == 0, "level": level.astype(np.int32),
        "score": score, "total_sessions": lengths, "kept_sessions": lengths,
    })
    users.to_parquet(folder / "users.parquet", index=False)
    (folder / "normalization.json").write_text(json.dumps({"cohort": cohort.isoformat(), "max_sessions": 192}))
    age = 30 + 8 * trait + rng.normal(size=n_users)
    age[rng.random(n_users) < 0.1] = np.nan
    return pd.DataFrame({
        "user_id": user_ids, "cohort_day": cohort,
        "impressions": rng.poisson(50, n_users), "impression_trend": slope + 0.3 * rng.normal(size=n_users),
        "ctr": rng.random(n_users), "age": age, "age_missing": np.isnan(age).astype(np.int32),
        "last_impression_ms": 1_572_000_000_000 + level * 1000,
    })


@pytest.fixture(scope="module")
def one_torch_thread():
    """The test networks are small: one thread avoids OpenMP synchronisation, which dominates their
    run time on two (often busy) cores. Modules that train use it through ``pytestmark``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def two_cohorts(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_planted_cohort(a, n_users=50, seed=1, max_len=12)
    write_planted_cohort(b, n_users=30, seed=2, max_len=12, cohort=date(2019, 11, 2))
    return a, b


def test_items_are_the_users_own_rows(two_cohorts):
    a, b = two_cohorts
    ds = SequenceDataset([a, b], target="level")
    assert len(ds) == 80
    offsets, seq = np.load(b / "offsets.npy"), np.load(b / "sequences.npy")
    s, st, y = ds[50 + 7]  # the eighth user of the second cohort
    assert np.array_equal(s, seq[offsets[7] : offsets[8]])
    assert np.array_equal(st, np.load(b / "static.npy")[7])
    assert y == pd.read_parquet(b / "users.parquet")["level"][7]
    assert ds.users["user_id"][57] == "u2_00007" and ds.lengths[57] == offsets[8] - offsets[7]


def test_split_and_index_selection(two_cohorts):
    a, b = two_cohorts
    ds = SequenceDataset([a, b], split="test")
    assert (ds.users["split"] == "test").all()
    assert len(ds) == sum((pd.read_parquet(p / "users.parquet")["split"] == "test").sum() for p in (a, b))
    assert ds.labels.dtype == np.float32
    picked = SequenceDataset([a, b], index=[79, 0])
    assert list(picked.users["user_id"]) == ["u2_00029", "u1_00000"]
    with pytest.raises(ValueError):
        SequenceDataset([a], split="train", index=[0])
    with pytest.raises(IndexError):
        SequenceDataset([a], index=[50])


def test_collate_pads_to_the_batch_longest_only(two_cohorts):
    a, _ = two_cohorts
    ds = SequenceDataset(a, target="level")
    items = [ds[i] for i in range(5)]
    batch = collate(items)
    lengths = [len(s) for s, _, _ in items]
    assert batch.seq.shape == (5, max(lengths), 24) and batch.lengths.tolist() == lengths
    assert batch.mask.sum(dim=1).tolist() == lengths
    assert (batch.seq[~batch.mask] == 0).all()
    assert batch.static.shape == (5, STATIC_DIM) and batch.y.dtype == torch.int64


def test_loader_shuffle_is_seeded_and_dataset_pickles_without_its_memmaps(two_cohorts):
    a, _ = two_cohorts
    ds = SequenceDataset(a)
    ds[0]  # opens the memory maps
    clone = pickle.loads(pickle.dumps(ds))
    assert all(c._sequences is None for c in clone._cohorts)
    assert np.array_equal(clone[3][0], ds[3][0])
    order = lambda seed: torch.cat([b.static[:, 0] for b in make_loader(ds, 8, shuffle=True, seed=seed)])  # noqa: E731
    assert torch.equal(order(3), order(3)) and not torch.equal(order(3), order(4))


def test_reads_the_tensors_and_kpis_the_pipeline_writes(tmp_path, con, lake):
    """Format agreement with the real transforms, not just with the writer above."""
    imps = []
    for i in range(24):
        for d in range(1, 2 + i % 9):
            imps += [Imp(f"U{i:02d}", f"{CALENDAR.day(d).isoformat()} {8 + i % 10:02d}:00:00", 1, click=i % 2 == 0),
                     Imp(f"U{i:02d}", f"{CALENDAR.day(d).isoformat()} 21:00:00", 2)]
        if i % 3 == 0:
            imps.append(Imp(f"U{i:02d}", f"{CALENDAR.day(17).isoformat()} 12:00:00", 1))
    write_impressions(tmp_path / "src", imps)
    write_snapshots(tmp_path / "src", [f"U{i:02d}" for i in range(0, 24, 2)])
    ingest_folder(con, tmp_path / "src", lake)
    cohort = CALENDAR.day(1)
    build_cohort_graph(con, lake, [cohort], split=SplitSettings(0.6, 0.2, seed=3))
    build_all_tensors(con, lake, [cohort], max_sessions=6)

    ds = SequenceDataset(lake.tensors(cohort), target="binary")
    batch = collate([ds[i] for i in range(len(ds))])
    assert len(ds) == 24 and int(batch.lengths.max()) == 6
    for model in (LSTMClassifier(), HybridLSTM()):
        assert torch.isfinite(model.eval()(batch.seq, batch.lengths, batch.static)).all()
    kpi = pq.read_table(lake.cohort("kpi_features", cohort)).to_pandas()
    labels = pq.read_table(lake.cohort("label_scores", cohort)).to_pandas()
    design = kpi_design(kpi, labels)
    assert len(design.X) == 24 and "last_impression_ms" not in design.X and "user_id" not in design.X
    assert design.churned.sum() == 16  # every third user returns in the label period
