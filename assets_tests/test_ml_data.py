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
from conftest import CALENDAR, Imp, tid, write_impressions, write_snapshots
from pipeline_helpers import build_all_tensors, build_cohort_graph, ingest_folder

from churn_dagster.domain.engagement import Thresholds, fit_thresholds, level_labels
from churn_dagster.stages.cohorts.sql.labels import SplitSettings
from churn_dagster.stages.tensors.ml.data import (
    STATIC_DIM,
    CohortTensors,
    SequenceDataset,
    collate,
    fit_normalization,
    make_loader,
)
from churn_dagster.training.ml.classical import kpi_design
from churn_dagster.training.ml.networks import HybridLSTM, LSTMClassifier

TREND_COL = 11  # total_impressions in the real feature order
CHURN_SHARE = 0.55


def write_planted_cohort(folder: Path, n_users: int = 3000, seed: int = 0, max_len: int = 40,
                         cohort: date = date(2019, 11, 1)) -> pd.DataFrame:
    """Write a cohort in the exact tensor format of ``transforms.tensors`` and return its KPI table.

    A hidden slope drives one sequence column over each user's sessions (the column's mean says nothing:
    only its *trend* does) and a hidden trait is static feature 0. The engagement score mixes both: the
    lowest 55% churn, and for the others every label component (frequency, impressions, Qraw) rises with the
    score, so the levels a protocol derives with any thresholds follow it. A sequence-only model can reach the
    slope, the hybrid both, and the KPI table carries noisy summaries of each. ``last_impression_ms`` is made
    to leak the label: it must never be used as a feature.
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, max_len + 1, n_users)
    slope, trait = rng.normal(size=n_users), rng.normal(size=n_users)
    score = 1.5 * slope + 0.8 * trait + 0.3 * rng.normal(size=n_users)
    churned = score < np.quantile(score, CHURN_SHARE)
    active_rank = (pd.Series(score).rank(pct=True).to_numpy() - CHURN_SHARE) / (1 - CHURN_SHARE)
    u = np.where(churned, 0.0, np.clip(active_rank, 0.01, 1.0))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    seq = rng.normal(size=(offsets[-1], 24)).astype(np.float32)
    for i in range(n_users):
        position = np.linspace(-1.0, 1.0, lengths[i])
        seq[offsets[i] : offsets[i + 1], TREND_COL] = slope[i] * position + 0.3 * rng.normal(size=lengths[i])
    static = rng.normal(size=(n_users, STATIC_DIM)).astype(np.float32)
    static[:, 0] = trait
    static[rng.random(n_users) < 0.1, 3] = np.nan  # "age" missing for some, as in the real tensors
    split = rng.choice(["train", "validation", "test"], size=n_users, p=[0.7, 0.15, 0.15])
    user_ids = [f"u{seed}_{i:05d}" for i in range(n_users)]
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "sequences.npy", seq)
    np.save(folder / "offsets.npy", offsets)
    np.save(folder / "static.npy", static)
    users = pd.DataFrame({
        "row_idx": np.arange(n_users, dtype=np.int64), "user_id": user_ids, "cohort_day": cohort,
        "split": split, "churned": churned, "frequency": np.ceil(7 * u) / 7, "impressions": np.round(1 + 40 * u),
        "quality_raw": u, "total_sessions": lengths, "kept_sessions": lengths,
    })
    users.to_parquet(folder / "users.parquet", index=False)
    train_rows = np.repeat(split == "train", lengths)
    (folder / "normalization.json").write_text(json.dumps({
        "cohort": cohort.isoformat(), "max_sessions": 192, "users": n_users, "sessions": int(offsets[-1]),
        "train_users": int((split == "train").sum()), "train_sessions": int(train_rows.sum()),
        "sequence": {"features": [f"s{k}" for k in range(24)], "train_mean": seq[train_rows].mean(axis=0).tolist(),
                     "train_std": seq[train_rows].std(axis=0).tolist()},
        "static": {"features": [f"x{k}" for k in range(STATIC_DIM)], "missing_as": "NaN"},
    }))
    age = 30 + 8 * trait + rng.normal(size=n_users)
    age[rng.random(n_users) < 0.1] = np.nan
    return pd.DataFrame({
        "user_id": user_ids, "cohort_day": cohort,
        "impressions": rng.poisson(50, n_users), "impression_trend": slope + 0.3 * rng.normal(size=n_users),
        "ctr": rng.random(n_users), "age": age, "age_missing": np.isnan(age).astype(np.int32),
        "last_impression_ms": 1_572_000_000_000 + churned * 1000,
    })


def planted_thresholds(*folders: Path) -> Thresholds:
    """The level thresholds of the planted cohorts' training users, as a protocol fits them."""
    users = pd.concat([pd.read_parquet(f / "users.parquet") for f in folders])
    train = users[users["split"] == "train"]
    return fit_thresholds(train["impressions"], train["quality_raw"], train["churned"], "planted training users")


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
    thresholds = planted_thresholds(a, b)
    ds = SequenceDataset([a, b], target="level", thresholds=thresholds)
    assert len(ds) == 80
    offsets, seq = np.load(b / "offsets.npy"), np.load(b / "sequences.npy")
    s, st, y = ds[50 + 7]  # the eighth user of the second cohort
    assert np.array_equal(s, seq[offsets[7] : offsets[8]])
    assert np.array_equal(st, np.nan_to_num(np.load(b / "static.npy")[7]))
    assert y == level_labels(pd.read_parquet(b / "users.parquet"), thresholds)[7]
    assert ds.users["user_id"][57] == "u2_00007" and ds.lengths[57] == offsets[8] - offsets[7]
    with pytest.raises(ValueError, match="level labels need the thresholds"):
        SequenceDataset([a], target="level")


def test_normalization_is_fit_on_the_training_rows_only(two_cohorts):
    a, b = two_cohorts
    cohorts = [CohortTensors(a), CohortTensors(b)]
    norm = fit_normalization(cohorts)
    static = np.concatenate([np.load(f / "static.npy") for f in (a, b)])
    users = pd.concat([pd.read_parquet(f / "users.parquet") for f in (a, b)])
    train = (users["split"] == "train").to_numpy()
    assert np.allclose(norm.static_impute, np.nanmedian(static[train], axis=0))
    filled = np.where(np.isnan(static[train]), norm.static_impute, static[train])
    assert np.allclose(norm.static_mean, filled.mean(axis=0)) and np.allclose(norm.static_std, filled.std(axis=0))
    sessions = np.concatenate([np.load(f / "sequences.npy")[np.repeat((pd.read_parquet(f / "users.parquet")["split"]
                                                                        == "train").to_numpy(), np.diff(np.load(f / "offsets.npy")))]
                               for f in (a, b)])
    assert np.allclose(norm.seq_mean, sessions.mean(axis=0), atol=1e-5)  # pooled exactly from the stored moments
    assert np.allclose(norm.seq_std, sessions.std(axis=0), atol=1e-5)
    # Rewriting every non-training user's static values leaves the fit unchanged.
    np.save(b / "static.npy", np.where(~train[50:, None], 1e6, np.load(b / "static.npy")).astype(np.float32))
    again = fit_normalization([CohortTensors(a), CohortTensors(b)])
    assert np.array_equal(again.static_impute, norm.static_impute) and np.array_equal(again.static_mean, norm.static_mean)
    item = SequenceDataset([a], normalization=norm)[0][1]
    assert np.isfinite(item).all()  # missing values imputed, then standardised


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
    ds = SequenceDataset(a, target="level", thresholds=planted_thresholds(a))
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
    clone = pickle.loads(pickle.dumps(ds))  # the memory maps are not pickled but reopened
    assert all(isinstance(c.sequences, np.memmap) for c in clone._cohorts)
    assert np.array_equal(clone[3][0], ds[3][0])
    order = lambda seed: torch.cat([b.static[:, 0] for b in make_loader(ds, 8, shuffle=True, seed=seed)])  # noqa: E731
    assert torch.equal(order(3), order(3)) and not torch.equal(order(3), order(4))


def test_reads_the_tensors_and_kpis_the_pipeline_writes(tmp_path, con, lake):
    """Format agreement with the real transforms, not just with the writer above."""
    imps = []
    for i in range(24):
        for d in range(1, 2 + i % 9):
            imps += [Imp(tid(f"U{i:02d}"), f"{CALENDAR.day(d).isoformat()} {8 + i % 10:02d}:00:00", 1, click=i % 2 == 0),
                     Imp(tid(f"U{i:02d}"), f"{CALENDAR.day(d).isoformat()} 21:00:00", 2)]
        if i % 3 == 0:
            imps.append(Imp(tid(f"U{i:02d}"), f"{CALENDAR.day(17).isoformat()} 12:00:00", 1))
    write_impressions(tmp_path / "src", imps)
    write_snapshots(tmp_path / "src", [tid(f"U{i:02d}") for i in range(0, 24, 2)])
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
    assert not {"frequency", "quality_raw", "churned", "follow_count"} & set(design.X.columns)
    assert "impressions" in design.X  # the observation window's, not the label period's
    assert design.churned.sum() == 16  # every third user returns in the label period


def test_a_rebuild_during_training_never_mixes_versions(tmp_path, con, lake):
    """A reader resolves the tensor folder once; rebuilds (two of them, the second removing the version the
    reader holds) change nothing it reads."""
    imps = [Imp(tid(f"U{i:02d}"), f"{CALENDAR.day(d).isoformat()} {8 + d:02d}:00:00") for i in range(12) for d in range(1, 3 + i)]
    write_impressions(tmp_path / "src", imps)
    write_snapshots(tmp_path / "src")
    ingest_folder(con, tmp_path / "src", lake)
    cohort = CALENDAR.day(1)
    build_cohort_graph(con, lake, [cohort], split=SplitSettings(0.6, 0.2, seed=3))
    build_all_tensors(con, lake, [cohort], max_sessions=10)
    reader = SequenceDataset(lake.tensors(cohort))
    before = [reader[i][0].copy() for i in range(len(reader))]
    for max_sessions in (2, 3):  # other offsets and other sequences
        build_all_tensors(con, lake, [cohort], max_sessions=max_sessions)
    assert all(np.array_equal(reader[i][0], before[i]) for i in range(len(reader)))
    assert max(len(s) for s in before) > 3 and len(SequenceDataset(lake.tensors(cohort))[11][0]) == 3
