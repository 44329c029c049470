"""The case study on an event log: will a user's response rate over the target days be above the training
users' mean, judged from what they did in the feature days? DuckDB SQL over an instance's canonical events.

The NCM case study asks it of click-through rates (clicks per impression); an event log names its own
exposure and response event types (``case_study.exposure``, ``case_study.response`` in the YAML).

- **Windows**: feature days ``start .. start + F - 1`` and target days ``start + F .. start + F + T - 1``, in
  the log's local days, with ``start`` the instance's ``windows.start`` (the NCM study's days 1-10 and
  11-30 of the log).
- **Population**: every user with an event in the feature days.
- **Features**: the feature days' events, active days and value sum, and the count of each event type the
  log has (as the churn features name them, ``n_<type>``); with a users table, its attributes (numbers as
  numbers, anything else as a category). Nothing from the target days.
- **Split**: the seeded hash of the user id that every study uses (``stages/cohorts/sql/labels.split_sql``).
- **Target**: the response rate, response events over exposure events in the target days. The threshold is
  the mean rate of the *training* users with an exposure there, stored and applied to every user; active =
  rate strictly above it; a user without a target-day exposure has no rate and is inactive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from churn_dagster.stages.cohorts.sql.labels import SplitSettings, split_params, split_sql
from churn_dagster.stages.events.sql.cohorts import type_columns
from churn_dagster.stages.events.sql.times import sql_text
from churn_dagster.storage.duck import atomic_path, exact_sum, literal_path

ANY_TYPE = "*"
BASE_COUNTS = ("events", "active_days")


@dataclass(frozen=True)
class CaseStudyWindows:
    """The study's days and event types: ``exposure`` types (``("*",)``: every event) and ``response`` types."""

    start: date
    exposure: tuple[str, ...]
    response: tuple[str, ...]
    feature_days: int = 10
    target_days: int = 20

    @property
    def feature_last(self) -> date:
        return self.start + timedelta(days=self.feature_days - 1)

    @property
    def target_last(self) -> date:
        return self.feature_last + timedelta(days=self.target_days)


def _types_filter(types: tuple[str, ...]) -> str:
    return "true" if ANY_TYPE in types else f"event_type IN ({', '.join(sql_text(t) for t in types)})"


def features_sql(events: Path, w: CaseStudyWindows, types: list[str], has_value: bool) -> str:
    """One row per user of the population (an event in the feature days), unordered."""
    counts = "".join(f", count_if(event_type = {sql_text(t)})::DOUBLE AS n_{stem}"
                     for t, stem in type_columns(types).items())
    # Exact (storage.duck.exact_sum): a parallel floating-point sum adds in a varying order, and a re-run must
    # write the same bytes.
    value = f", coalesce({exact_sum('value')}, 0) AS value_sum" if has_value else ""
    return f"""
        SELECT user_id, count(*)::DOUBLE AS events, count(DISTINCT local_day)::DOUBLE AS active_days{value}{counts}
        FROM read_parquet({sql_text(literal_path(events))})
        WHERE local_day BETWEEN DATE '{w.start}' AND DATE '{w.feature_last}'
        GROUP BY user_id"""


def labels_sql(events: Path, w: CaseStudyWindows) -> str:
    """The population's split, target-day exposures and responses, and rate. Uses the split parameters ``$seed``, ``$train``, ``$validation``; reads the population ``_population``."""
    return f"""
        WITH target AS (
            SELECT user_id, count_if({_types_filter(w.exposure)}) AS exposures,
                   count_if({_types_filter(w.response)}) AS responses
            FROM read_parquet({sql_text(literal_path(events))})
            WHERE local_day BETWEEN DATE '{w.feature_last + timedelta(days=1)}' AND DATE '{w.target_last}'
            GROUP BY user_id)
        SELECT p.user_id, {split_sql("p.user_id")} AS split, coalesce(t.exposures, 0) AS exposures,
               coalesce(t.responses, 0) AS responses,
               CASE WHEN t.exposures > 0 THEN t.responses / t.exposures END AS rate
        FROM _population p LEFT JOIN target t USING (user_id)
        ORDER BY p.user_id"""


def build_tables(con: duckdb.DuckDBPyConnection, events: Path, w: CaseStudyWindows, types: list[str],
                 has_value: bool, split: SplitSettings, folder: Path,
                 users: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Features, labels (with ``active``) and the threshold, each written atomically under ``folder``.
    ``users``: the users table's attribute columns by user (``user_id`` first), joined to the features."""
    features = con.execute(f"{features_sql(events, w, types, has_value)} ORDER BY user_id").df()
    con.register("_population", features[["user_id"]])
    labels = con.execute(labels_sql(events, w), split_params(split)).df()
    con.unregister("_population")
    fitted = labels[(labels["split"] == "train") & labels["rate"].notna()]
    threshold = {"threshold": float(fitted["rate"].mean()) if len(fitted) else None,
                 "fitted_on_users": int(len(fitted)), "fitted_on": "train",
                 "rule": "active = target-day response rate > threshold; no target-day exposure = inactive",
                 "exposure": list(w.exposure), "response": list(w.response),
                 "feature_days": [w.start.isoformat(), w.feature_last.isoformat()],
                 "target_days": [(w.feature_last + timedelta(days=1)).isoformat(), w.target_last.isoformat()]}
    cut = threshold["threshold"]
    labels["active"] = (labels["rate"] > cut).fillna(False).astype("int64") if cut is not None else 0
    if users is not None:
        features = features.merge(users, on="user_id", how="left")
    for name, frame in (("features", features), ("labels", labels)):
        with atomic_path(folder / f"{name}.parquet") as tmp:
            frame.to_parquet(tmp, index=False)
    with atomic_path(folder / "threshold.json") as tmp:
        tmp.write_text(json.dumps(threshold, indent=2))
    return features, labels, threshold
