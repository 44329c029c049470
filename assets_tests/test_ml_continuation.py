"""The continuation models on a planted signal: each family learns every horizon, the LSTM reads exactly the
prefix of its request and ignores padding, and a horizon without positives is reported as not trained."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from continuation_helpers import build_tables, planted_impressions

from churn_dagster.stages.tensors.ml.data import collate
from churn_dagster.studies.continuation.ml.config import PrefixNetwork, prefix_training
from churn_dagster.studies.continuation.ml.data import (
    HORIZONS_MIN,
    STEP_COLUMNS,
    TABULAR_COLUMNS,
    PrefixDataset,
    Prefixes,
    labels,
    tabular_features,
)
from churn_dagster.studies.continuation.ml.models import (
    build_prefix_lstm,
    train_prefix_lstm,
    train_tabular,
)
from churn_dagster.training.ml.hyperparameters import XGBConfig


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    from conftest import CALENDAR  # noqa: F401 - the calendar of the tables

    from churn_dagster.storage.duck import DuckSettings, connect
    from churn_dagster.storage.lake import Lake

    root = tmp_path_factory.mktemp("continuation_ml")
    con = connect(DuckSettings(memory_limit="1GB", threads=2, temp_directory=root / "duck_tmp"))
    try:
        return build_tables(root, Lake(root / "lake"), con, planted_impressions())
    finally:
        con.close()


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_planted_data_has_both_classes_at_every_horizon(tables):
    _, examples = tables
    for h in HORIZONS_MIN:
        share = labels(examples, h).mean()
        assert 0.05 < share < 0.6, (h, share)
    assert set(examples["split"]) == {"train", "validation", "test"}
    assert list(tabular_features(examples).columns) == list(TABULAR_COLUMNS)


@pytest.mark.parametrize("family", ["logreg", "xgboost"])
def test_classical_models_report_an_auc_per_horizon(tables, family):
    _, examples = tables
    config = XGBConfig(n_estimators=200, n_jobs=1) if family == "xgboost" else None
    for h in HORIZONS_MIN:
        result = train_tabular(family, examples, h, config)
        assert result.skipped is None and result.test_metrics["positives"] > 0
        assert result.test_auc > 0.8, (family, h, result.test_auc)
        assert len(result.predictions) == result.test_metrics["examples"] == (examples["split"] == "test").sum()


def test_the_lstm_reports_an_auc_per_horizon(tables, one_thread):
    requests, examples = tables
    prefixes = Prefixes(requests, examples, max_steps=16)
    for h in HORIZONS_MIN:
        result = train_prefix_lstm(prefixes, h, prefix_training(epochs=4), PrefixNetwork(hidden_size=16), "cpu")
        assert result.skipped is None and 1 <= result.best_epoch <= 4 and len(result.history) <= 4
        assert result.test_auc > 0.8, (h, result.test_auc)
        assert result.validation.auc("lstm", result.model, result.normalization) == pytest.approx(
            result.val_metrics["roc_auc"])


def test_a_prefix_is_its_sessions_requests_up_to_and_including_it(tables):
    requests, examples = tables
    prefixes = Prefixes(requests, examples, max_steps=5)
    ordered = requests.sort_values(["user_id", "request_ms"]).reset_index(drop=True)
    for k in np.random.default_rng(0).choice(len(examples), 40, replace=False):
        e = examples.iloc[k]
        session = ordered[(ordered.user_id == e.user_id) & (ordered.global_session_idx == e.global_session_idx)]
        expected = session[session.request_ms <= e.request_ms].tail(5)
        got = ordered.iloc[prefixes.start[k]:prefixes.end[k]]
        assert list(got.request_ms) == list(expected.request_ms)
        assert prefixes.lengths[k] == min(5, e.request_idx)
        assert np.allclose(prefixes.steps[prefixes.end[k] - 1, STEP_COLUMNS.index("cards")], np.log1p(e.cards))


def test_the_lstm_is_padding_invariant(tables, one_thread):
    requests, examples = tables
    prefixes = Prefixes(requests, examples, max_steps=16)
    norm = prefixes.fit_normalization(np.flatnonzero(examples["split"].to_numpy() == "train"))
    y = labels(examples, 10)
    short, long = int(np.argmin(prefixes.lengths)), int(np.argmax(prefixes.lengths))
    assert prefixes.lengths[short] < prefixes.lengths[long]
    data = PrefixDataset(prefixes, np.array([short, long]), y, norm)
    torch.manual_seed(0)
    model = build_prefix_lstm(PrefixNetwork(hidden_size=8)).eval()
    with torch.no_grad():
        alone = collate([data[0]])
        padded = collate([data[0], data[1]])
        assert padded.seq.shape[1] > alone.seq.shape[1]
        padded.seq[0, alone.seq.shape[1]:] = 1e3  # garbage in the padding must not matter
        out_alone = model(alone.seq, alone.lengths, alone.static)
        out_padded = model(padded.seq, padded.lengths, padded.static)
    assert torch.allclose(out_alone[0], out_padded[0], atol=1e-5)


def test_a_horizon_without_positive_training_examples_is_not_trained(tables):
    _, examples = tables
    none_continue = examples.assign(continues_30min=False)
    result = train_tabular("logreg", none_continue, 30)
    assert result.model is None and "one class only" in result.skipped and np.isnan(result.test_auc)
