"""No leakage (label-period rows never reach a feature; tensors store raw values and each cohort's training
moments, nothing fitted on other users) and the ragged tensor layout."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import CALENDAR, Imp, tid, write_impressions, write_snapshots
from pipeline_helpers import build_all_tensors, build_cohort_graph, ingest_folder

from churn_dagster.stages.cohorts.sql.labels import SplitSettings

# The fixture's users and cards, as IDs of the published grammar (see conftest.tid).
U01, U05, U09 = tid("U01"), tid("U05"), tid("U09")

COHORT = CALENDAR.day(1)
FEATURE_TABLES = ("sessions", "static_features", "kpi_features")


def _day(dt: int, hh: int, mm: int = 0) -> str:
    return f"{CALENDAR.day(dt).isoformat()} {hh:02d}:{mm:02d}:00"


def _population() -> list[Imp]:
    """40 users starting on day 1 with varied habits; every fourth returns in the label period."""
    imps = []
    for i in range(40):
        user = tid(f"U{i:02d}")
        for d in range(1, 1 + i % 14 + 1):
            imps.append(Imp(user, _day(d, 8 + i % 12), 1, click=i % 3 == 0, view_time=10.0 + i if i % 3 == 0 else None))
            imps.append(Imp(user, _day(d, 8 + i % 12, 5), 2))
        if i % 4 == 0:
            imps.append(Imp(user, _day(16, 20), 1))
    return imps


def _build(tmp_path, name, con, lake_cls, imps):
    src = tmp_path / f"src_{name}"
    write_impressions(src, imps)
    write_snapshots(src, [tid(f"U{i:02d}") for i in range(0, 40, 2)])
    lake = lake_cls(tmp_path / f"lake_{name}")
    ingest_folder(con, src, lake)
    build_cohort_graph(con, lake, [COHORT], split=SplitSettings(0.6, 0.2, seed=5))
    build_all_tensors(con, lake, [COHORT], max_sessions=4)
    return lake


@pytest.fixture
def two_lakes(tmp_path, con, lake):
    base = _population()
    leaky = base + [
        Imp(U01, _day(15, 1), 1, click=True, like=True, share=True, view_time=99.0),  # first label day
        Imp(U05, _day(21, 23, 59), 3),  # last label day
        Imp(U09, _day(25, 12), 1),  # after the label period
    ]
    return _build(tmp_path, "base", con, type(lake), base), _build(tmp_path, "leaky", con, type(lake), leaky)


def test_label_period_impressions_change_no_feature(two_lakes):
    base, leaky = two_lakes
    for table in FEATURE_TABLES:
        assert base.cohort(table, COHORT).read_bytes() == leaky.cohort(table, COHORT).read_bytes(), table
    for name in ("sequences.npy", "static.npy", "offsets.npy"):
        assert (base.tensors(COHORT) / name).read_bytes() == (leaky.tensors(COHORT) / name).read_bytes(), name


def test_but_they_do_change_the_labels(two_lakes):
    base, leaky = two_lakes
    a = pq.read_table(base.cohort("label_scores", COHORT)).to_pandas().set_index("user_id")
    b = pq.read_table(leaky.cohort("label_scores", COHORT)).to_pandas().set_index("user_id")
    assert a.loc[U01, "churned"] and not b.loc[U01, "churned"]
    assert a.loc[U05, "churned"] and not b.loc[U05, "churned"]
    assert a.loc[U09, "churned"] and b.loc[U09, "churned"]  # day 25 is after the label period


def test_ragged_layout_keeps_the_latest_sessions(two_lakes):
    base, _ = two_lakes
    folder = base.tensors(COHORT)
    users = pq.read_table(folder / "users.parquet").to_pandas()
    offsets = np.load(folder / "offsets.npy")
    seq = np.load(folder / "sequences.npy", mmap_mode="r")
    assert offsets[0] == 0 and offsets[-1] == len(seq) and len(offsets) == len(users) + 1
    lengths = np.diff(offsets)
    assert (lengths == np.minimum(users["total_sessions"], 4)).all()
    # U13 is active on 14 days with one session a day: only days 11..14 are kept, in order.
    meta = json.loads((folder / "normalization.json").read_text())
    day_col = meta["sequence"]["features"].index("day_num")
    row = users.index[users["user_id"] == tid("U13")][0]
    assert list(seq[offsets[row] : offsets[row + 1], day_col]) == [11, 12, 13, 14]  # raw values


def test_stored_moments_are_those_of_the_training_sessions_and_missing_stays_missing(two_lakes):
    base, _ = two_lakes
    folder = base.tensors(COHORT)
    users = pq.read_table(folder / "users.parquet").to_pandas()
    offsets = np.load(folder / "offsets.npy")
    seq = np.load(folder / "sequences.npy")
    static = np.load(folder / "static.npy")
    meta = json.loads((folder / "normalization.json").read_text())
    train_rows = np.repeat((users["split"] == "train").to_numpy(), np.diff(offsets))
    assert meta["train_sessions"] == int(train_rows.sum()) and meta["train_users"] == int((users["split"] == "train").sum())
    assert np.allclose(seq[train_rows].mean(axis=0), meta["sequence"]["train_mean"], atol=1e-5)
    assert np.allclose(seq[train_rows].std(axis=0), meta["sequence"]["train_std"], atol=1e-5)
    assert not np.allclose(seq.mean(axis=0), meta["sequence"]["train_mean"], atol=1e-3)  # others did not count
    # Users without a demographics row (the odd ones) have no age: NaN, flagged, never imputed here.
    features = meta["static"]["features"]
    assert "follow_count" not in features  # measured after the label period: off by default
    no_age = users["user_id"].isin([tid(f"U{i:02d}") for i in range(1, 40, 2)]).to_numpy()
    assert np.isnan(static[no_age, features.index("age")]).all()
    assert (static[no_age, features.index("age_missing")] == 1).all()
    assert not np.isnan(static[~no_age]).any()
    assert {"frequency", "impressions", "quality_raw", "churned"} <= set(users.columns)
    assert not {"level", "score"} & set(users.columns)  # levels come from a protocol's thresholds


def test_feature_summaries_of_a_run_by_hand(tmp_path):
    """One grouped scan gives each partition its own summary; a cohort without users has NULL statistics."""
    import duckdb

    from churn_dagster.stages.features.user_features import feature_summaries

    path = tmp_path / "features.parquet"
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT * FROM (VALUES (DATE '2019-11-01', 1, 2.0), (DATE '2019-11-01', 3, 2.0),
                                               (DATE '2019-11-01', NULL, 2.0)) t(cohort_day, x, y))
                    TO '{path}' (FORMAT parquet)""")
    found = feature_summaries(con, [path], ["x", "y"], ["2019-11-01", "2019-11-02"])
    rows = {key: [tuple(r.data.values()) for r in value.records] for key, value in found.items()}
    assert rows["2019-11-01"] == [("x", 2.0, 1.0, 1.0, 3.0, 1), ("y", 2.0, 0.0, 2.0, 2.0, 0)]
    assert rows["2019-11-02"] == [("x", None, None, None, None, 0), ("y", None, None, None, None, 0)]
