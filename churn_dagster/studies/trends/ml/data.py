"""The inputs of the DIGMN trend models and their baselines, for the users of some trend cohorts.

Everything comes from the first trend period, the first ``first_period_days`` days of the user's cohort (the
observation window or its first days), read from the tables of ``trend_inputs/``
(:mod:`churn_dagster.studies.trends.sql.inputs`), so no input reaches into the second period the labels
compare it with:

- ``macro``: the user's KPI aggregates over period 1 (``trend_macro_features``), the paper's macro features;
- ``daily``: event-type counts per day of period 1 (``user_day_events``), [users, days, event types], the
  activity LSTM's input;
- ``behaviour``: per session of period 1 (``trend_sessions``), its event-type frequencies and its context
  (day, hour and weekday as cycles, duration and the gap since the previous session on a log scale), stored
  ragged with ``offsets``;
- ``intents``: per session, its intent vector under the partition's intent model (cosine similarity of its
  event frequencies to each intent), and the session event counts it was computed from, so that a model
  trained with another intent model can be scored with its own (:meth:`TrendData.with_intents`).

Only the users the median filter keeps are included (the paper's task), in cohort and user order. The split
is ``user_splits``' (a seeded hash of the user id), so the trend models use the same users for training,
validation and test as the churn models, and no day of period 2 decides which users train.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from churn_dagster.storage.lake import Lake, read_cohort_tables
from churn_dagster.studies.trends.ml.intents import IntentModel, session_frequencies

CONTEXT_FEATURES = ("day_sin", "day_cos", "hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "log_duration_min",
                    "log_gap_min", "first_session")
TASKS = {"day": ("day_trend", 3), "session": ("session_trend", 2)}


@dataclass(frozen=True)
class TrendData:
    """Row-aligned arrays of the kept users of some trend cohorts (see the module docstring)."""

    users: pd.DataFrame  # user_id, cohort_day, split, day_trend, session_trend
    macro: pd.DataFrame
    daily: np.ndarray
    offsets: np.ndarray
    behaviour: np.ndarray
    intents: np.ndarray
    counts: np.ndarray  # per session, its event-type counts (``event_columns``): what an intent model reads
    event_columns: tuple[str, ...]

    def with_intents(self, model: IntentModel) -> TrendData:
        """The same rows with every session's intent vector under ``model``: how a model trained with another
        topic model (a champion) is scored on these rows with the intents it was trained on."""
        return replace(self, intents=model.intent_vectors(self.counts, self.event_columns).astype(np.float32))

    def labels(self, task: str) -> np.ndarray:
        return self.users[TASKS[task][0]].to_numpy(np.int64)

    def rows(self, split: str) -> np.ndarray:
        return (self.users["split"] == split).to_numpy()

    def sessions_of(self, row: int) -> slice:
        return slice(int(self.offsets[row]), int(self.offsets[row + 1]))


def session_context(sessions: pd.DataFrame, days: int) -> np.ndarray:
    """The context features of each session (:data:`CONTEXT_FEATURES`), cyclic times as sine and cosine."""
    def cycle(values, period):
        angle = 2 * np.pi * np.asarray(values, np.float64) / period
        return np.sin(angle), np.cos(angle)

    gap = sessions["gap_min"].to_numpy(np.float64)
    columns = [*cycle(sessions["day_num"] - 1, days), *cycle(sessions["hour_of_day"], 24),
               *cycle(sessions["weekday"], 7), np.log1p(sessions["duration_min"].to_numpy(np.float64)),
               np.log1p(np.clip(gap, 0, None)), (gap < 0).astype(np.float64)]
    return np.column_stack(columns).astype(np.float32)


def load_trend_data(lake: Lake, cohorts: Sequence[date], intents: IntentModel, event_columns: Sequence[str],
                    first_period_days: int) -> TrendData:
    """The kept users of ``cohorts`` with every input of the trend models: labels and splits from ``lake``,
    the inputs from its ``trend_inputs/`` area, whose tables cover ``first_period_days`` days."""
    read = lambda table, area=lake: read_cohort_tables(area, table, list(cohorts), "trend models")  # noqa: E731
    first_period = lambda table: read(table, lake.trend_inputs())  # noqa: E731
    labels = read("trend_labels")
    splits = read("user_splits")[["user_id", "split"]]
    users = labels[labels["kept_by_filter"]][["user_id", "cohort_day", "day_trend", "session_trend"]].merge(
        splits, on="user_id", how="inner")
    sessions = first_period("session_events").merge(
        first_period("sessions")[["user_id", "global_session_idx", "day_num", "hour_of_day", "weekday",
                                  "duration_min", "gap_min"]], on=["user_id", "global_session_idx"],
        suffixes=("", "_session"))
    return assemble_trend_data(users, first_period("kpi_features"), first_period("user_day_events"), sessions,
                               intents, event_columns, first_period_days)


def load_event_log_trend_data(folder: Path, intents: IntentModel) -> TrendData:
    """The same for an event log's trend folder (``studies/trends/event_log_tables.py``): its kept users, with
    the folder's own event columns and period."""
    meta = json.loads((folder / "columns.json").read_text())
    users = pd.read_parquet(folder / "users.parquet")
    users = users[users["kept_by_filter"]][["user_id", "cohort_day", "day_trend", "session_trend", "split"]]
    return assemble_trend_data(users, pd.read_parquet(folder / "macro.parquet"),
                               pd.read_parquet(folder / "daily.parquet"), pd.read_parquet(folder / "sessions.parquet"),
                               intents, meta["event_columns"], meta["windows"]["first_days"])


def assemble_trend_data(users: pd.DataFrame, macro: pd.DataFrame, days: pd.DataFrame, sessions: pd.DataFrame,
                        intents: IntentModel, event_columns: Sequence[str], first_period_days: int) -> TrendData:
    """Row-aligned arrays of ``users`` (user_id, cohort_day, day_trend, session_trend, split) from their macro
    features (one row per user), daily counts (one row per user and day) and sessions (counts and the
    context columns, keyed by user and ``global_session_idx``)."""
    users = users.sort_values(["cohort_day", "user_id"], kind="stable").reset_index(drop=True)
    kept = users["user_id"]
    kpi = macro.set_index("user_id").loc[kept]
    macro = kpi.drop(columns=[c for c in ("cohort_day", "last_impression_ms") if c in kpi.columns]).reset_index(drop=True)
    days = days[days["user_id"].isin(kept)].sort_values(["user_id", "day_num"])
    daily = days.set_index("user_id").loc[kept, list(event_columns)].to_numpy(np.float32).reshape(
        len(users), first_period_days, len(event_columns))
    order = pd.Series(np.arange(len(users)), index=kept)
    events = sessions[sessions["user_id"].isin(kept)].assign(row=lambda f: order.loc[f["user_id"]].to_numpy())
    events = events.sort_values(["row", "global_session_idx"], kind="stable")
    counts = events[list(event_columns)].to_numpy(np.float64)
    behaviour = np.hstack([session_frequencies(counts).toarray().astype(np.float32),
                           session_context(events, first_period_days)])
    offsets = np.concatenate([[0], np.cumsum(np.bincount(events["row"], minlength=len(users)))]).astype(np.int64)
    return TrendData(users, macro, daily, offsets, behaviour,
                     intents.intent_vectors(counts, event_columns).astype(np.float32), counts, tuple(event_columns))


@dataclass(frozen=True)
class MacroScaling:
    """Median imputation and standardisation of the macro features, fit on training rows only."""

    medians: np.ndarray
    means: np.ndarray
    stds: np.ndarray

    @classmethod
    def fit(cls, macro: pd.DataFrame, train: np.ndarray) -> MacroScaling:
        values = macro.to_numpy(np.float64)[train]
        medians = np.nan_to_num(np.nanmedian(values, axis=0)) if len(values) else np.zeros(values.shape[1])
        filled = np.where(np.isnan(values), medians, values)
        stds = filled.std(axis=0) if len(values) else np.ones(values.shape[1])
        return cls(medians, filled.mean(axis=0) if len(values) else np.zeros(values.shape[1]),
                   np.where(stds > 0, stds, 1.0))

    def transform(self, macro: pd.DataFrame) -> np.ndarray:
        values = macro.to_numpy(np.float64)
        return ((np.where(np.isnan(values), self.medians, values) - self.means) / self.stds).astype(np.float32)


class TrendBatches:
    """Batches of the trend data's rows for the sequence models: per user the latest ``max_sessions`` sessions
    (behaviour and intents padded to the batch's longest, with ``lengths``), the scaled macro features, the
    daily counts and the task's labels."""

    def __init__(self, data: TrendData, task: str, scaling: MacroScaling, rows: np.ndarray, max_sessions: int = 192):
        self.data, self.rows, self.max_sessions = data, np.flatnonzero(rows), max_sessions
        self.labels = data.labels(task)[self.rows]
        self.macro = scaling.transform(data.macro.iloc[self.rows])

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, positions: np.ndarray) -> dict:
        """The rows at ``positions`` (indices into this subset) as tensors."""
        import torch

        spans = [self.data.sessions_of(int(self.rows[p])) for p in positions]
        spans = [slice(max(s.start, s.stop - self.max_sessions), s.stop) for s in spans]
        lengths = np.array([s.stop - s.start for s in spans])
        width = max(1, int(lengths.max(initial=0)))
        behaviour = np.zeros((len(spans), width, self.data.behaviour.shape[1]), np.float32)
        intents = np.zeros((len(spans), width, self.data.intents.shape[1]), np.float32)
        for i, span in enumerate(spans):
            behaviour[i, : lengths[i]] = self.data.behaviour[span]
            intents[i, : lengths[i]] = self.data.intents[span]
        return {
            "behaviour": torch.from_numpy(behaviour), "intents": torch.from_numpy(intents),
            "lengths": torch.from_numpy(lengths), "macro": torch.from_numpy(self.macro[positions]),
            "daily": torch.from_numpy(self.data.daily[self.rows[positions]]),
            "y": torch.from_numpy(self.labels[positions]),
        }

    def batches(self, size: int, shuffle: bool = False, seed: int = 0):
        order = np.random.default_rng(seed).permutation(len(self)) if shuffle else np.arange(len(self))
        for start in range(0, len(self), size):
            yield self.batch(order[start:start + size])
