"""The whole data graph through Dagster on the real 10k-row heads, checked against an independent pandas
computation of sessions and labels from the raw rows."""

from __future__ import annotations

import shutil

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from conftest import CALENDAR, require_real_head, resources_for

from churn_dagster.definitions import build_definitions
from churn_dagster.runs.runner import data_graph_steps, run_steps


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    head = require_real_head()
    root = tmp_path_factory.mktemp("real_head")
    shutil.copytree(head, root / "source")
    resources = resources_for(root / "source", root)
    defs = build_definitions(resources=resources)
    with dg.DagsterInstance.ephemeral() as instance:
        run_ids = run_steps(defs, instance, data_graph_steps(CALENDAR), echo=lambda _: None)
        checks = [
            e.event_specific_data
            for run_id in run_ids
            for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            for e in [e.dagster_event]
        ]
    return root, head, checks


def _independent(head) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sessions per user and label-period activity, straight from the CSV with pandas."""
    imp = pd.read_csv(head / "impression_data.csv", dtype={"userId": str, "mlogId": str}, na_values=["NA"])
    first = imp.groupby("userId")["dt"].min().rename("f")
    imp = imp.join(first, on="userId")
    cohort = imp[imp["f"] <= 10]
    window = cohort[(cohort["dt"] >= cohort["f"]) & (cohort["dt"] <= cohort["f"] + 13)]
    window = window.sort_values(["userId", "impressTime", "impressPosition", "mlogId"])
    gap = window.groupby("userId")["impressTime"].diff()
    window = window.assign(new=(gap.isna() | (gap >= 30 * 60 * 1000)).astype(int))
    sessions = window.groupby("userId").agg(sessions=("new", "sum"), impressions=("new", "size"))
    label = cohort[(cohort["dt"] >= cohort["f"] + 14) & (cohort["dt"] <= cohort["f"] + 20)]
    active = label.groupby("userId").agg(label_impressions=("dt", "size"), label_days=("dt", "nunique"))
    labels = pd.DataFrame(index=first[first <= 10].index).join(active).fillna(0)
    return sessions, labels


def test_every_check_passes(materialized):
    _, _, checks = materialized
    failed = [(c.asset_key.to_user_string(), c.check_name) for c in checks if not c.passed]
    assert len(checks) > 20 and failed == []


def test_sessions_and_labels_match_pandas(materialized):
    root, head, _ = materialized
    expected_sessions, expected_labels = _independent(head)
    data = root / "data" / "cohorts"
    ours = pd.read_parquet(data / "sessions").groupby("user_id").agg(
        sessions=("global_session_idx", "max"), impressions=("total_impressions", "sum")
    )
    pd.testing.assert_frame_equal(
        ours.sort_index(), expected_sessions.sort_index(), check_names=False, check_dtype=False
    )
    scores = pd.read_parquet(data / "label_scores").set_index("user_id").sort_index()
    expected_labels = expected_labels.sort_index()
    assert list(scores.index) == list(expected_labels.index)
    assert np.array_equal(scores["impressions"], expected_labels["label_impressions"])
    assert np.array_equal(scores["active_days"], expected_labels["label_days"])
    assert np.array_equal(scores["churned"], expected_labels["label_impressions"] == 0)


def test_tensors_cover_every_cohort_user(materialized):
    root, _, _ = materialized
    users = pd.read_parquet(root / "data" / "cohorts" / "cohort_users")
    covered = sum(
        len(pd.read_parquet(root / "data" / "tensors" / f"cohort={c}" / "users.parquet"))
        for c in users["cohort_day"].astype(str).unique()
    )
    assert covered == len(users)
