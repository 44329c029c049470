"""Session intents (LDA over sessions as bags of event types): cosine vectors, K by perplexity, profiles, plots."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp

from churn_dagster.studies.trends.ml.intents import (
    IntentModel,
    choose_k,
    fit_intents,
    user_intent_profile,
)
from churn_dagster.training.ml import plots
from churn_dagster.training.ml.hyperparameters import IntentConfig

EVENTS = [f"event_{e}" for e in range(9)]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def planted_corpus(n_sessions: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sessions drawn from 3 known topics over 9 event types: topic k puts 85% of its mass on events
    3k..3k+2 and spreads the rest; each session mixes the topics with a sparse Dirichlet(0.2)."""
    rng = np.random.default_rng(seed)
    topics = np.full((3, 9), 0.15 / 6)
    for k in range(3):
        topics[k, 3 * k:3 * k + 3] = [0.45, 0.25, 0.15]
    mixtures = rng.dirichlet([0.2] * 3, size=n_sessions)
    lengths = rng.poisson(15, n_sessions) + 1
    counts = np.stack([rng.multinomial(n, m @ topics) for n, m in zip(lengths, mixtures)])
    return counts, topics


@pytest.fixture(scope="module")
def planted_fit():
    counts, topics = planted_corpus(800, seed=7)
    model = fit_intents(sp.csr_matrix(counts), EVENTS, IntentConfig(k_min=2, k_max=5, seed=42))
    return model, counts, topics


def hand_model() -> IntentModel:
    return IntentModel(k=2, event_names=("feed", "search", "jobs"),
                       topics=np.array([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]]), perplexity={2: 3.0})


def test_cosine_intents_match_a_worked_example():
    # Session 1: counts (1, 3, 0) -> frequencies (0.25, 0.75, 0), norm sqrt(0.625).
    #   intent 0 (0.5, 0.5, 0), norm sqrt(0.5):  dot 0.5  -> 0.5 / sqrt(0.3125) = 2 / sqrt(5)
    #   intent 1 (0, 0.2, 0.8), norm sqrt(0.68): dot 0.15 -> 0.15 / sqrt(0.425)
    # Session 2: no events -> zeros, not NaN.
    expected = np.array([[2 / math.sqrt(5), 0.15 / math.sqrt(0.425)], [0.0, 0.0]])
    model = hand_model()
    counts = np.array([[1, 3, 0], [0, 0, 0]])
    np.testing.assert_allclose(model.intent_vectors(counts), expected, rtol=1e-12)
    np.testing.assert_allclose(model.intent_vectors(sp.csr_matrix(counts)), expected, rtol=1e-12)
    # Columns named in another order are put back in the model's order.
    np.testing.assert_allclose(model.intent_vectors(counts[:, [2, 0, 1]], ["jobs", "feed", "search"]),
                               expected, rtol=1e-12)
    with pytest.raises(ValueError):
        model.intent_vectors(counts, ["feed", "search", "profile"])
    with pytest.raises(ValueError):
        model.intent_vectors(np.array([[1, -1, 0]]))


def test_k_selection_finds_the_planted_three_topics(planted_fit):
    model, counts, topics = planted_fit
    assert sorted(model.perplexity) == [2, 3, 4, 5]
    assert all(np.isfinite(v) and v > 0 for v in model.perplexity.values())
    assert model.k == 3
    assert model.topics.shape == (3, len(EVENTS))
    np.testing.assert_allclose(model.topics.sum(axis=1), 1.0)
    assert model.n_sessions == len(counts)
    # Each planted topic is recovered by one fitted intent (up to the order of topics).
    similarity = topics @ model.topics.T / np.outer(np.linalg.norm(topics, axis=1),
                                                   np.linalg.norm(model.topics, axis=1))
    assert sorted(similarity.argmax(axis=1).tolist()) == [0, 1, 2]
    assert similarity.max(axis=1).min() > 0.95


def test_choose_k_prefers_the_smaller_k_within_the_tolerance():
    curve = {2: 10.0, 3: 8.05, 4: 8.0, 5: 8.5}
    assert choose_k(curve, 0.0) == 4
    assert choose_k(curve, 0.01) == 3
    assert choose_k({2: 5.0, 3: 5.0}, 0.0) == 2


def test_only_training_rows_are_fit():
    counts, _ = planted_corpus(200, seed=3)
    config = IntentConfig(k_min=2, k_max=3, max_iter=5)
    alone = fit_intents(counts, EVENTS, config)
    other_users = np.full((50, len(EVENTS)), 0)
    other_users[:, 0] = 40
    mixed = np.vstack([counts, other_users, np.zeros((5, len(EVENTS)))])
    masked = fit_intents(mixed, EVENTS, config, train_rows=np.arange(len(mixed)) < len(counts))
    np.testing.assert_array_equal(masked.topics, alone.topics)
    assert masked.perplexity == alone.perplexity


def test_overrides_and_bad_input():
    counts, _ = planted_corpus(100, seed=1)
    model = fit_intents(counts, EVENTS, k_min=2, k_max=2, max_iter=3, seed=5)
    assert (model.k, model.config.seed, list(model.perplexity)) == (2, 5, [2])
    with pytest.raises(ValueError):
        fit_intents(counts, EVENTS[:-1], k_max=2)
    with pytest.raises(ValueError):
        fit_intents(counts, EVENTS, k_min=4, k_max=3)
    with pytest.raises(ValueError):
        fit_intents(counts[:1], EVENTS, k_max=2)


def test_user_profile_shares_sum_to_one():
    users = ["u2", "u1", "u1", "u1", "u2", "u3"]
    vectors = np.array([[0.1, 0.6], [0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.0, 0.0], [0.0, 0.0]])
    profile = user_intent_profile(users, vectors)
    assert list(profile.columns) == ["user_id", "intent_0", "intent_1", "dominant_intent", "sessions"]
    rows = profile.set_index("user_id")
    np.testing.assert_allclose(rows.loc["u1", ["intent_0", "intent_1"]], [2 / 3, 1 / 3])
    np.testing.assert_allclose(rows.loc["u2", ["intent_0", "intent_1"]], [0.0, 1.0])
    np.testing.assert_allclose(rows.loc[["u1", "u2"], ["intent_0", "intent_1"]].sum(axis=1), 1.0)
    assert rows["dominant_intent"].to_dict() == {"u1": 0, "u2": 1, "u3": -1}
    assert rows["sessions"].to_dict() == {"u1": 3, "u2": 1, "u3": 0}
    assert rows.loc["u3", ["intent_0", "intent_1"]].tolist() == [0.0, 0.0]


def test_dict_round_trip_gives_identical_intent_vectors(planted_fit):
    model, counts, _ = planted_fit
    restored = IntentModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert (restored.k, restored.event_names, restored.perplexity) == (model.k, model.event_names,
                                                                        model.perplexity)
    assert restored.config == model.config
    np.testing.assert_array_equal(restored.topics, model.topics)
    np.testing.assert_array_equal(restored.intent_vectors(counts), model.intent_vectors(counts))
    assert [[e for e, _ in top] for top in restored.top_events(3)] == [[e for e, _ in top]
                                                                       for top in model.top_events(3)]


def test_plots_write_pngs(planted_fit, tmp_path):
    model, _, _ = planted_fit
    paths = [
        plots.plot_perplexity_curve(model.perplexity, model.k, tmp_path / "perplexity.png"),
        plots.plot_intent_heatmap(model.topics, model.event_names, tmp_path / "intents.png"),
    ]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000
