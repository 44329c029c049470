"""Our vectorised LDA (churn_dagster.studies.trends.ml.lda) against scikit-learn's, a hand-computed one-topic fit, and weights."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import LatentDirichletAllocation

from churn_dagster.studies.trends.ml.lda import distinct_documents, fit_lda


def corpus(n: int = 400, words: int = 7, seed: int = 1) -> np.ndarray:
    """Poisson counts with a per-document activity level and word mix; many rows repeat, as sessions do."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rng.gamma(1.0, 2.0, (n, 1)) * rng.dirichlet([0.5] * words, n) * 5)
    return counts[counts.sum(axis=1) > 0].astype(float)


@pytest.mark.parametrize("k", [2, 5])
def test_unweighted_fit_reproduces_scikit_learn(k):
    counts = corpus()
    theirs = LatentDirichletAllocation(n_components=k, learning_method="batch", max_iter=10, random_state=3).fit(counts)
    ours = fit_lda(counts, k, max_iter=10, seed=3)
    np.testing.assert_allclose(ours.components, theirs.components_, rtol=1e-5)
    assert ours.perplexity(counts) == pytest.approx(theirs.perplexity(counts), rel=1e-8)


def test_one_topic_is_the_word_totals_plus_the_prior():
    # With K = 1 every word belongs to the one topic: E-step responsibilities are 1, so after any number of
    # passes the topic's parameters are the prior (1/K = 1) plus each word's total count over the documents,
    # each distinct row counted by its multiplicity.
    rows = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 0.0]])
    model = fit_lda(rows, 1, weights=np.array([3.0, 1.0]), max_iter=4)
    np.testing.assert_allclose(model.components, [[1 + 6, 1 + 3, 1 + 3]])


def test_distinct_rows_with_multiplicities_fit_like_the_whole_corpus():
    counts = corpus(n=600, words=5, seed=4)
    rows, weights = distinct_documents(counts)
    assert len(rows) < len(counts) and weights.sum() == len(counts)
    whole, distinct = fit_lda(counts, 3, seed=0), fit_lda(rows, 3, weights=weights, seed=0)
    topics = [m.components / m.components.sum(axis=1, keepdims=True) for m in (whole, distinct)]
    # Same algorithm; only the random start of each document's topic mix differs, which the per-document
    # iterations wash out to within their convergence tolerance.
    np.testing.assert_allclose(topics[1], topics[0], atol=0.02)
    assert distinct.perplexity(rows, weights) == pytest.approx(whole.perplexity(counts), rel=2e-3)


def test_distinct_documents_counts_each_row():
    rows, weights = distinct_documents(np.array([[1, 0], [0, 2], [1, 0]]))
    np.testing.assert_array_equal(rows, [[0, 2], [1, 0]])
    np.testing.assert_array_equal(weights, [1, 2])


@pytest.mark.parametrize("counts, k", [(np.zeros((0, 3)), 2), (np.array([[1.0, -1.0]]), 2), (np.ones((2, 2)), 0)])
def test_bad_input_is_refused(counts, k):
    with pytest.raises(ValueError):
        fit_lda(counts, k)
