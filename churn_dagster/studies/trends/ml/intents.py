"""Session intents as in DIGMN (Li, Du, Fu et al., WSDM 2023, sections 4 and 5.2): LDA over sessions as bags of events.

Each session is a document and each event type a word; LDA's topics are the basic intents, and their number K
is the one of ``k_min..k_max`` with the lowest perplexity on held-out sessions. A session's intent vector is
the cosine similarity between its event-frequency vector and each topic's event distribution (the paper's
eq. 2), so scoring needs only the topic matrix: :class:`IntentModel` holds it and round-trips through JSON.

- Leakage: fit on training users' sessions only, either by passing only those rows or with ``train_rows``.
- K: among the Ks whose held-out perplexity is within ``k_tolerance`` (relative, 1% by default) of the lowest,
  the smallest wins. On one split, the variational perplexity of one K moves by about that much from seed to
  seed, and fewer intents are easier for people to name and use.
- Held-out split: by session, seeded (the matrix carries no user ids). Sessions without any event say nothing
  about topics and are left out of fitting; their intent vector is all zeros.
- Fitting: :mod:`churn_dagster.studies.trends.ml.lda`, scikit-learn's batch algorithm run on the distinct count vectors at
  once, each weighted by how many sessions share it.
- Refit: the chosen K is refit on all fitting sessions (search and held-out part), since the split only served
  to compare Ks and the topics are better estimated from more sessions. The curve comes from the split fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from churn_dagster.studies.trends.ml.lda import distinct_documents, fit_lda
from churn_dagster.training.ml.hyperparameters import IntentConfig


def as_counts(counts, n_events: int | None = None) -> sp.csr_matrix:
    """A session × event-type count matrix (numpy or scipy sparse) as float CSR, checked: 2-D, finite,
    non-negative, and ``n_events`` columns when given."""
    matrix = sp.csr_matrix(counts, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"counts must be 2-D (sessions × event types), got shape {matrix.shape}")
    if n_events is not None and matrix.shape[1] != n_events:
        raise ValueError(f"counts have {matrix.shape[1]} event-type columns, expected {n_events}")
    if not np.isfinite(matrix.data).all() or (matrix.data < 0).any():
        raise ValueError("counts must be finite and non-negative")
    return matrix


def session_frequencies(counts) -> sp.csr_matrix:
    """Each session's counts divided by its number of events (rows sum to 1); a session without events
    stays a zero row."""
    matrix = as_counts(counts)
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
    return sp.csr_matrix(sp.diags(scale) @ matrix)


@dataclass(frozen=True, eq=False)
class IntentModel:
    """The fitted intents: ``topics[k, e]`` is the weight of event type ``event_names[e]`` in intent ``k``
    (each row sums to 1); ``perplexity[K]`` the held-out perplexity of each K tried; ``n_sessions`` the
    non-empty training sessions the topics were fit on."""

    k: int
    event_names: tuple[str, ...]
    topics: np.ndarray
    perplexity: dict[int, float]
    n_sessions: int = 0
    config: IntentConfig = field(default_factory=IntentConfig)

    def __post_init__(self):
        topics = np.array(self.topics, dtype=np.float64)
        if topics.shape != (self.k, len(self.event_names)):
            raise ValueError(f"topics of shape {topics.shape}, expected ({self.k}, {len(self.event_names)})")
        if not np.allclose(topics.sum(axis=1), 1.0) or (topics < 0).any():
            raise ValueError("each topic must be a distribution over the event types")
        topics.setflags(write=False)
        object.__setattr__(self, "topics", topics)
        object.__setattr__(self, "event_names", tuple(self.event_names))

    def intent_vectors(self, counts, event_names: Sequence[str] | None = None) -> np.ndarray:
        """``[n_sessions, k]``: cosine similarity of each session's event frequencies to each topic, in [0, 1]
        (both are non-negative); zeros for a session without events. ``event_names``, when given, names the
        columns of ``counts``: they are reordered to the model's order (they must be the same set)."""
        counts = as_counts(counts)
        if event_names is not None:
            names = list(event_names)
            if sorted(names) != sorted(self.event_names) or len(set(names)) != len(names):
                raise ValueError(f"event types {names} differ from the model's {list(self.event_names)}")
            counts = counts[:, [names.index(e) for e in self.event_names]]
        frequencies = session_frequencies(as_counts(counts, len(self.event_names)))
        dots = np.asarray(frequencies @ self.topics.T)
        session_norms = np.sqrt(np.asarray(frequencies.multiply(frequencies).sum(axis=1)).ravel())
        norms = np.outer(session_norms, np.linalg.norm(self.topics, axis=1))
        return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)

    def top_events(self, n: int = 3) -> list[list[tuple[str, float]]]:
        """Per intent, its ``n`` heaviest event types with their weights: what a person reads to name it."""
        order = np.argsort(-self.topics, axis=1, kind="stable")[:, :n]
        return [[(self.event_names[e], float(self.topics[k, e])) for e in row] for k, row in enumerate(order)]

    def to_dict(self) -> dict:
        """JSON-ready (the perplexity keys become strings); :meth:`from_dict` restores the same model."""
        return {
            "k": self.k,
            "event_names": list(self.event_names),
            "topics": self.topics.tolist(),
            "perplexity": {str(k): float(v) for k, v in self.perplexity.items()},
            "n_sessions": self.n_sessions,
            "config": asdict(self.config),
        }

    @classmethod
    def from_dict(cls, data: dict) -> IntentModel:
        """Settings a newer version dropped (scikit-learn's ``learning_method``, ``batch_size``) are ignored."""
        stored = data.get("config", {})
        return cls(
            k=int(data["k"]),
            event_names=tuple(data["event_names"]),
            topics=np.asarray(data["topics"], dtype=np.float64),
            perplexity={int(k): float(v) for k, v in data["perplexity"].items()},
            n_sessions=int(data.get("n_sessions", 0)),
            config=IntentConfig(**{f.name: stored[f.name] for f in fields(IntentConfig) if f.name in stored}),
        )


def choose_k(perplexity: dict[int, float], tolerance: float) -> int:
    """The smallest K whose perplexity is at most ``(1 + tolerance)`` times the lowest one."""
    best = min(perplexity.values())
    return min(k for k, value in perplexity.items() if value <= best * (1 + tolerance))


def fit_intents(counts_train, event_names: Sequence[str], config: IntentConfig | None = None, *,
                train_rows: np.ndarray | None = None, **overrides) -> IntentModel:
    """Fit LDA for each K of ``config.k_min..k_max`` on a seeded share of the training sessions, score each
    on the held-out rest, choose K (:func:`choose_k`), refit it on all of them, and return the intents.

    ``counts_train``: sessions × event types (numpy or scipy sparse); ``train_rows``: a boolean mask of the
    rows that belong to training users (None: every row does). ``overrides`` replace fields of ``config``
    (``fit_intents(X, names, k_max=6, seed=1)``)."""
    config = replace(config or IntentConfig(), **overrides)
    if not 1 <= config.k_min <= config.k_max:
        raise ValueError(f"need 1 <= k_min <= k_max, got {config.k_min}..{config.k_max}")
    counts = as_counts(counts_train, len(event_names))
    if train_rows is not None:
        train_rows = np.asarray(train_rows, dtype=bool)
        if train_rows.shape != (counts.shape[0],):
            raise ValueError(f"train_rows has shape {train_rows.shape}, expected ({counts.shape[0]},)")
        counts = counts[train_rows]
    counts = counts[np.asarray(counts.sum(axis=1)).ravel() > 0]
    rng = np.random.default_rng(config.seed)
    if config.max_sessions is not None and counts.shape[0] > config.max_sessions:
        counts = counts[np.sort(rng.choice(counts.shape[0], config.max_sessions, replace=False))]
    n = counts.shape[0]
    n_held_out = round(config.held_out_share * n)
    if n_held_out < 1 or n - n_held_out < 1:
        raise ValueError(f"{n} non-empty training sessions cannot be split {config.held_out_share:.0%} held out")
    order = rng.permutation(n)
    dense = counts.toarray()
    held_out, search = (distinct_documents(dense[np.sort(rows)]) for rows in (order[:n_held_out], order[n_held_out:]))

    perplexity = {k: fit_lda(search[0], k, weights=search[1], max_iter=config.max_iter, seed=config.seed)
                  .perplexity(*held_out) for k in range(config.k_min, config.k_max + 1)}
    k = choose_k(perplexity, config.k_tolerance)
    rows, multiplicity = distinct_documents(dense)
    weights = fit_lda(rows, k, weights=multiplicity, max_iter=config.max_iter, seed=config.seed).components
    return IntentModel(k=k, event_names=tuple(event_names), topics=weights / weights.sum(axis=1, keepdims=True),
                       perplexity=perplexity, n_sessions=n, config=config)


def intent_columns(k: int) -> list[str]:
    return [f"intent_{i}" for i in range(k)]


def user_intent_profile(session_user_ids: Sequence, intent_vectors: np.ndarray) -> pd.DataFrame:
    """Per user (one row each, sorted by ``user_id``): ``intent_i`` is the share of the user's sessions whose
    dominant intent (highest cosine; ties to the lower index) is ``i``, which a CRM reads as "in 60% of her
    sessions she mostly searched". Sessions without events (zero vectors) have no intent and do not count, so
    the shares sum to 1 for every user with at least one; ``sessions`` counts those. ``dominant_intent`` is
    the intent with the largest share (ties to the lower index), -1 for a user without any such session."""
    ids = np.asarray(session_user_ids)
    vectors = np.asarray(intent_vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(ids) != len(vectors):
        raise ValueError(f"{len(ids)} user ids for intent vectors of shape {vectors.shape}")
    columns = intent_columns(vectors.shape[1])
    active = (vectors > 0).any(axis=1)
    dominant = np.zeros(vectors.shape)
    dominant[np.flatnonzero(active), vectors.argmax(axis=1)[active]] = 1.0
    table = pd.DataFrame(dominant, columns=columns)
    table["sessions"] = active.astype(np.int64)
    table.insert(0, "user_id", ids)
    profile = table.groupby("user_id", sort=True).sum().reset_index()
    sessions = profile["sessions"].to_numpy()
    shares = profile[columns].to_numpy()
    profile[columns] = np.divide(shares, sessions[:, None], out=np.zeros_like(shares), where=sessions[:, None] > 0)
    profile.insert(len(columns) + 1, "dominant_intent",
                   np.where(sessions > 0, profile[columns].to_numpy().argmax(axis=1), -1))
    return profile
