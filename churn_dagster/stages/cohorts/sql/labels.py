"""Label-period targets: binary churn, the engagement score and its five levels; and the user split.

A user's split is a function of the user id and the seed alone (:func:`split_sql`: the first 32 bits of
``md5(user_id:seed)`` as a fraction of 2^32, cut at the train and validation fractions), so it is known the
day the user joins a cohort (:func:`build_splits`), long before any label: the continuation and trend inputs,
which read only the observation window, take their split without waiting for the label period. It never
changes when labels change: re-ingesting a label day cannot move a user between splits, and the same user is
in the same split for every model of every study and every retrain (the case study uses it too). The
score's P95 thresholds are fit on the training split only (SPEC.md "Targets"), so :func:`build_labels` reads
the written split. Stratification by churn is not enforced by rank, which would tie a user's split to
everybody else's labels; it is checked and reported when the labels exist (:func:`split_balance`).

The label-period components (active days, impressions, Qraw) come from SQL; the score and the level come
from :mod:`churn_dagster.domain.engagement` with thresholds fit on the cohort's own training split. This
per-cohort view is what the ``label_scores`` asset shows; each model re-derives the levels of its users with
thresholds fit on the training users of its own protocol, from the same components.
"""

from __future__ import annotations

import hashlib
import math
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
from churn_dagster.errors import UserError
from churn_dagster.stages.cohorts.sql.cohorts import (
    activity_paths,
    cohort_days_dts,
    cohort_paths,
)
from churn_dagster.storage.duck import write_partitions
from churn_dagster.storage.lake import Lake


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

def split_sql(user: str) -> str:
    """The split of the user id ``user`` (a SQL expression) with parameters ``$seed``, ``$train`` and
    ``$validation``: md5 is the same on every platform and DuckDB version."""
    unit = f"(('0x' || left(md5({user} || ':' || $seed), 8))::UBIGINT / 4294967296.0)"
    return f"CASE WHEN {unit} < $train THEN 'train' WHEN {unit} < $train + $validation THEN 'validation' ELSE 'test' END"


def split_of(user_id: str, split: SplitSettings) -> str:
    """:func:`split_sql` in Python, for documentation and tests."""
    unit = int(hashlib.md5(f"{user_id}:{split.seed}".encode()).hexdigest()[:8], 16) / 2**32
    return ("train" if unit < split.train_fraction else
            "validation" if unit < split.train_fraction + split.validation_fraction else "test")


def split_params(split: SplitSettings) -> dict:
    return {"seed": str(split.seed), "train": split.train_fraction, "validation": split.validation_fraction}


SPLIT_SQL = f"""
CREATE OR REPLACE TEMP TABLE _splits AS
SELECT user_id, cohort_day, {split_sql("user_id")} AS split FROM read_parquet($cohort_paths, hive_partitioning = false)
"""


class SplitsOutdated(UserError):
    """``user_splits`` lacks members of ``cohort_users``: the membership was rebuilt after the split."""


def build_splits(con: duckdb.DuckDBPyConnection, lake: Lake, cohorts: list[date], split: SplitSettings) -> dict[date, int]:
    """Write ``user_splits`` (user_id, cohort_day, split) for each cohort's members; return the row counts."""
    con.execute(SPLIT_SQL, {"cohort_paths": cohort_paths(lake, "cohort_users", cohorts, "user_splits"),
                            **split_params(split)})
    rows = write_partitions(con, "_splits", "cohort_day", {c: lake.cohort("user_splits", c) for c in cohorts}, "user_id")
    con.execute("DROP TABLE _splits")
    return rows


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
) -> tuple[dict[date, int], dict[date, Thresholds | None]]:
    """Write ``label_scores`` for each cohort, with the split ``user_splits`` holds; return row counts and the
    thresholds of each cohort (None for a cohort without an active training user, including an empty cohort)."""
    con.execute(
        LABEL_ACTIVITY_SQL,
        {
            "cohort_paths": cohort_paths(lake, "cohort_users", cohorts, "label_scores"),
            "activity_paths": activity_paths(lake, calendar, cohort_days_dts(calendar, cohorts, "label"), "label_scores"),
            "label_days": float(calendar.label_days),
        },
    )
    components = con.execute(
        "SELECT l.*, s.split FROM _label_activity l LEFT JOIN read_parquet($splits, hive_partitioning = false) s "
        "USING (user_id, cohort_day) ORDER BY user_id",
        {"splits": cohort_paths(lake, "user_splits", cohorts, "label_scores")}).df()
    unsplit = int(components["split"].isna().sum())
    if unsplit:
        raise SplitsOutdated(f"user_splits lacks {unsplit} member(s) of cohort_users for {', '.join(map(str, cohorts))}: "
                             "materialize user_splits of these cohorts again, then label_scores")
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
    rows = write_partitions(con, "_scores", "cohort_day", {c: lake.cohort("label_scores", c) for c in cohorts}, "user_id")
    for table in ("_label_activity", "_scores"):
        con.execute(f"DROP TABLE {table}")
    return rows, thresholds


# A split's churn share may differ from its cohort's by chance; beyond this many standard errors (of a split of
# that size drawn at random from the cohort) the split is reported as unbalanced.
BALANCE_TOLERANCE_SE = 4.0
MIN_USERS_FOR_BALANCE = 100


@dataclass(frozen=True)
class SplitBalance:
    """How far each split's churn share lies from its cohort's, in standard errors of a random draw."""

    cohort: date
    split: str
    users: int
    churn_share: float
    cohort_share: float
    standard_errors: float

    @property
    def balanced(self) -> bool:
        return self.users < MIN_USERS_FOR_BALANCE or abs(self.standard_errors) <= BALANCE_TOLERANCE_SE


def split_balance(frame) -> list[SplitBalance]:
    """Per cohort and split (``frame``: cohort_day, split, churned per user) the churn share against the
    cohort's; the standard error is that of a share of ``users`` drawn without replacement from the cohort."""
    found = []
    for cohort, users in frame.groupby("cohort_day"):
        p, total = float(users["churned"].mean()), len(users)
        for name, part in users.groupby("split"):
            n = len(part)
            se = math.sqrt(p * (1 - p) / n * (total - n) / max(total - 1, 1)) if 0 < p < 1 and n < total else 0.0
            share = float(part["churned"].mean())
            found.append(SplitBalance(pd.Timestamp(cohort).date(), str(name), n, share, p,
                                      (share - p) / se if se > 0 else 0.0))
    return found
