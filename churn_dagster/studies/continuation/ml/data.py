"""The continuation models' inputs: a feature matrix for the classical models and request prefixes for the LSTM.

Both read the tables of :mod:`churn_dagster.studies.continuation.sql.examples` (loaded as DataFrames): the examples (one
row per sampled request, with its split and labels) and, for the LSTM, every request of the same users, from
which an example's prefix (the requests of its session up to and including it) is cut.

Counts and durations are heavy-tailed, so they enter as ``log1p``; periodic fields are already sin/cos. A
missing value stays NaN here: ``minutes_since_last_click`` before any proven click and
``minutes_since_prev_session`` in a first session; the logistic regression imputes training medians (its
pipeline), XGBoost routes NaN itself, and the LSTM's :class:`~churn_dagster.stages.tensors.ml.data.Normalization` (fit on
training rows only) imputes medians. ``clicked_before`` and ``prior_sessions`` keep "none yet" apart from a
typical value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from churn_dagster.stages.tensors.ml.data import Normalization
from churn_dagster.studies.continuation.sql.examples import HORIZONS_MIN, label_column

__all__ = ["HORIZONS_MIN", "label_column"]  # the tables' horizons and label names, for the models' callers
LOG_COLUMNS = frozenset({
    "request_idx", "elapsed_min", "gap_prev_request_min", "cards", "max_position", "cards_so_far", "clicks_so_far",
    "minutes_since_last_click", "prev_request_clicks", "prior_sessions", "prior_requests", "prior_cards",
    "prior_clicks", "prior_mean_session_min", "prior_sessions_10min", "minutes_since_prev_session",
})
# One LSTM step per request of the prefix: what the request was and the previous request's clicks proven by then.
STEP_COLUMNS = ("gap_prev_request_min", "elapsed_min", "cards", "max_position", "prev_request_clicks",
                "hour_sin", "hour_cos")
# Beside the steps: the user's history before the session and the calendar, and the prefix's true length
# (the LSTM reads at most max_steps requests).
STATIC_COLUMNS = ("request_idx", "weekday_sin", "weekday_cos", "day_num", "prior_sessions", "prior_requests",
                  "prior_cards", "prior_clicks", "prior_mean_session_min", "prior_sessions_10min",
                  "minutes_since_prev_session")
# The classical models see everything known at the request, as one row.
TABULAR_COLUMNS = ("request_idx", "elapsed_min", "gap_prev_request_min", "cards", "max_position", "cards_so_far",
                   "clicks_so_far", "clicked_before", "minutes_since_last_click", "prev_request_clicks", "hour_sin",
                   "hour_cos", "weekday_sin", "weekday_cos", "day_num", "prior_sessions", "prior_requests",
                   "prior_cards", "prior_clicks", "prior_mean_session_min", "prior_sessions_10min",
                   "minutes_since_prev_session")


@dataclass(frozen=True)
class PrefixLayout:
    """What a prefix is made of: the step and static columns (``logged``: read as log(1 + x)), the column that
    orders a user's steps and locates an example among them (``key``), and the step's position in its session
    (``position``, 1 at its first). The NCM requests' by default; an event log's are its own
    (``studies/continuation/sql/event_logs.py``)."""

    steps: tuple[str, ...] = STEP_COLUMNS
    static: tuple[str, ...] = STATIC_COLUMNS
    logged: frozenset[str] = LOG_COLUMNS
    key: str = "request_ms"
    position: str = "request_idx"


NCM_LAYOUT = PrefixLayout()


def _transformed(frame: pd.DataFrame, columns: Sequence[str], logged: frozenset[str] = LOG_COLUMNS) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for c in columns:
        values = (frame["clicks_so_far"] > 0) if c == "clicked_before" else frame[c]
        values = values.astype(np.float64)
        out[c] = np.log1p(values) if c in logged else values
    return out.reset_index(drop=True)


def tabular_features(examples: pd.DataFrame, columns: Sequence[str] = TABULAR_COLUMNS,
                     logged: frozenset[str] = LOG_COLUMNS) -> pd.DataFrame:
    """The classical models' feature matrix, row-aligned with ``examples``: ``columns`` (the NCM examples' by
    default; an event log's are its own), those in ``logged`` as log(1 + x)."""
    return _transformed(examples, columns, logged)


def labels(examples: pd.DataFrame, horizon_min: int) -> np.ndarray:
    return examples[label_column(horizon_min)].to_numpy(np.float32)


class Prefixes:
    """Every example's prefix as a slice of one step matrix: the requests of all users sorted by user and time,
    so a session's requests are contiguous and an example's prefix ends at its own row. Raw (log1p) values;
    :class:`PrefixDataset` normalises them."""

    def __init__(self, requests: pd.DataFrame, examples: pd.DataFrame, max_steps: int,
                 layout: PrefixLayout = NCM_LAYOUT):
        key, position = layout.key, layout.position
        ordered = requests.sort_values(["user_id", key], kind="stable").reset_index(drop=True)
        located = examples[["user_id", key]].merge(
            ordered[["user_id", key]].reset_index(names="row"), on=["user_id", key], how="left",
            validate="one_to_one")
        if located["row"].isna().any():
            raise ValueError(f"{int(located['row'].isna().sum())} examples have no row among the requests")
        end = located["row"].to_numpy(np.int64) + 1
        first = end - examples[position].to_numpy(np.int64)
        session = ordered["global_session_idx"].to_numpy()
        if not ((ordered[position].to_numpy()[first] == 1)
                & (session[first] == examples["global_session_idx"].to_numpy())).all():
            raise ValueError("the requests table does not hold every example's session from its first request")
        self.start = np.maximum(first, end - max_steps)
        self.end = end
        self.layout = layout
        self.steps = _transformed(ordered, layout.steps, layout.logged).to_numpy(np.float64)
        self.static = _transformed(examples, layout.static, layout.logged).to_numpy(np.float64)
        self.examples = examples.reset_index(drop=True)

    def __len__(self) -> int:
        return len(self.end)

    @property
    def lengths(self) -> np.ndarray:
        return self.end - self.start

    def step_rows(self, index: np.ndarray) -> np.ndarray:
        """The step-matrix rows that the prefixes of examples ``index`` read (each once)."""
        depth = np.zeros(len(self.steps) + 1, np.int64)  # +1 at each prefix's start, -1 after its end
        np.add.at(depth, self.start[index], 1)
        np.add.at(depth, self.end[index], -1)
        return np.flatnonzero(np.cumsum(depth[:-1]) > 0)

    def fit_normalization(self, train: np.ndarray) -> Normalization:
        """Moments of the steps of the training prefixes and medians, means and standard deviations of the
        training examples' static values."""
        steps = self.steps[self.step_rows(train)]
        static = self.static[train]
        impute = np.nan_to_num(np.nanmedian(static, axis=0)) if len(static) else np.zeros(static.shape[1])
        filled = np.where(np.isnan(static), impute, static)
        return Normalization(steps.mean(axis=0), _safe(steps.std(axis=0)), impute, filled.mean(axis=0),
                             _safe(filled.std(axis=0)), self.layout.static)


def _safe(std: np.ndarray) -> np.ndarray:
    return np.where(std > 1e-12, std, 1.0)


class PrefixDataset(Dataset):
    """Examples ``index`` of ``prefixes`` as ``(steps [L, F], static [S], label)``, normalised by
    ``normalization``; ``ml.data.collate`` pads a batch of them."""

    def __init__(self, prefixes: Prefixes, index: np.ndarray, y: np.ndarray, normalization: Normalization):
        if (len(normalization.seq_mean) != prefixes.steps.shape[1]
                or tuple(normalization.static_features) != tuple(prefixes.layout.static)):
            raise ValueError("this normalisation was fit on other step or static features")
        self.prefixes, self.index, self.normalization = prefixes, np.asarray(index, np.int64), normalization
        self.labels = np.asarray(y, np.float32)[self.index]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, np.float32]:
        p, n, k = self.prefixes, self.normalization, self.index[i]
        seq = ((p.steps[p.start[k]:p.end[k]] - n.seq_mean) / n.seq_std).astype(np.float32)
        static = np.where(np.isnan(p.static[k]), n.static_impute, p.static[k])
        return seq, ((static - n.static_mean) / n.static_std).astype(np.float32), self.labels[i]
