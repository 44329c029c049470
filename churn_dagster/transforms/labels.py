"""Label-period targets: binary churn, the engagement score and its five levels, and the user split.

The split is assigned here because the score's P95 thresholds must be fit on training users only
(SPEC.md "Targets"): users are split by cohort, stratified by churn, with a seeded hash so a re-run gives
the same assignment. The label-period components (active days, impressions, Qraw) come from SQL; the score
and the level come from :mod:`churn_dagster.domain.engagement` with thresholds fit on the cohort's own training
split. This per-cohort view is what the ``label_scores`` asset shows; each model re-derives the levels of
its users with thresholds fit on the training users of its own protocol, from the same components.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd

from churn_dagster.domain.calendar import Calendar
from churn_dagster.domain.engagement import (
    Thresholds,
    ThresholdsUndefined,
    fit_thresholds,
    score_components,
)
from churn_dagster.transforms.cohorts import (
    activity_paths,
    cohort_days_dts,
    cohort_paths,
)
from churn_dagster.transforms.duck import write_partitions
from churn_dagster.transforms.lake import Lake


@dataclass(frozen=True)
class SplitSettings:
    train_fraction: float = 0.70
    validation_fraction: float = 0.15
    seed: int = 42


LABEL_ACTIVITY_SQL = """
CREATE OR REPLACE TEMP TABLE _label_activity AS
WITH users AS (SELECT user_id, cohort_day, label_start_dt, label_end_dt FROM read_parquet($cohort_paths, hive_partitioning = false)),
period AS (
    SELECT u.user_id, count(*) AS active_days, sum(a.impressions) AS impressions, sum(a.clicks) AS clicks,
           sum(a.likes) AS likes, sum(a.shares) AS shares, sum(a.comments) AS comments
    FROM users u JOIN read_parquet($activity_paths, hive_partitioning = false) a
      ON a.user_id = u.user_id AND a.dt BETWEEN u.label_start_dt AND u.label_end_dt
    GROUP BY u.user_id
)
SELECT u.user_id, u.cohort_day,
       coalesce(p.active_days, 0) AS active_days, coalesce(p.impressions, 0) AS impressions,
       coalesce(p.clicks, 0) AS clicks, coalesce(p.likes, 0) AS likes,
       coalesce(p.shares, 0) AS shares, coalesce(p.comments, 0) AS comments,
       coalesce(p.impressions, 0) = 0 AS churned,
       coalesce(p.active_days, 0) / $label_days AS frequency,
       CASE WHEN coalesce(p.impressions, 0) > 0
            THEN (p.clicks + 2 * p.likes + 3 * p.shares + 4 * p.comments) / p.impressions ELSE 0 END AS quality_raw
FROM users u LEFT JOIN period p USING (user_id)
"""

# Stratified by (cohort, churned): within each stratum users are ordered by a seeded md5, which is stable
# across DuckDB versions, and cut at the cumulative fractions.
SPLIT_SQL = """
CREATE OR REPLACE TEMP TABLE _splits AS
SELECT user_id, cohort_day, churned,
       CASE WHEN rank_in_stratum <= round(stratum_size * $train) THEN 'train'
            WHEN rank_in_stratum <= round(stratum_size * ($train + $validation)) THEN 'validation'
            ELSE 'test' END AS split
FROM (
    SELECT user_id, cohort_day, churned,
           row_number() OVER (PARTITION BY cohort_day, churned ORDER BY md5(user_id || ':' || $seed), user_id)
               AS rank_in_stratum,
           count(*) OVER (PARTITION BY cohort_day, churned) AS stratum_size
    FROM _label_activity
)
"""

def _score_cohort(frame: pd.DataFrame, cohort: date) -> tuple[pd.DataFrame, Thresholds | None]:
    """Score one cohort's users with thresholds fit on its training split (None when it has no active
    training user: then only the churned users have a level, 0)."""
    train = frame["split"] == "train"
    try:
        thresholds = fit_thresholds(frame.loc[train, "impressions"], frame.loc[train, "quality_raw"],
                                    frame.loc[train, "churned"], f"the training split of cohort {cohort}")
    except ThresholdsUndefined:
        blank = {"intensity": None, "quality": None, "score": None, "level": None}
        scored = frame.assign(**blank)
        scored.loc[frame["churned"], ["intensity", "quality", "score", "level"]] = [0.0, 0.0, 0.0, 0]
        return scored, None
    parts = score_components(frame["frequency"], frame["impressions"], frame["quality_raw"], frame["churned"], thresholds)
    return frame.assign(**parts), thresholds


def build_labels(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    calendar: Calendar,
    cohorts: list[date],
    split: SplitSettings,
) -> tuple[dict[date, int], dict[date, Thresholds | None]]:
    """Write ``user_splits`` and ``label_scores`` for each cohort; return row counts and the thresholds of
    each cohort (None for a cohort without an active training user, including an empty cohort)."""
    con.execute(
        LABEL_ACTIVITY_SQL,
        {
            "cohort_paths": cohort_paths(lake, "cohort_users", cohorts, "label_scores"),
            "activity_paths": activity_paths(lake, calendar, cohort_days_dts(calendar, cohorts, "label"), "label_scores"),
            "label_days": float(calendar.label_days),
        },
    )
    con.execute(SPLIT_SQL, {"train": split.train_fraction, "validation": split.validation_fraction, "seed": str(split.seed)})
    components = con.execute(
        "SELECT l.*, s.split FROM _label_activity l JOIN _splits s USING (user_id, cohort_day) ORDER BY user_id"
    ).df()
    scored, thresholds = [], {}
    for cohort in cohorts:
        in_cohort = pd.to_datetime(components["cohort_day"]).dt.date == cohort
        frame, thresholds[cohort] = _score_cohort(components[in_cohort], cohort)
        scored.append(frame)
    con.register("_scored_frame", pd.concat(scored, ignore_index=True).astype({"level": "Int32"}))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _scores AS SELECT * EXCLUDE (intensity, quality, score, level), "
        "intensity::DOUBLE AS intensity, quality::DOUBLE AS quality, score::DOUBLE AS score, level::INTEGER AS level "
        "FROM _scored_frame"
    )
    con.unregister("_scored_frame")
    write_partitions(con, "_splits", "cohort_day", {c: lake.cohort("user_splits", c) for c in cohorts}, "user_id")
    rows = write_partitions(con, "_scores", "cohort_day", {c: lake.cohort("label_scores", c) for c in cohorts}, "user_id")
    for table in ("_label_activity", "_splits", "_scores"):
        con.execute(f"DROP TABLE {table}")
    return rows, thresholds
