"""Label-period targets: binary churn, the engagement score and its five levels, and the user split.

The split is assigned here because the score's P95 thresholds must be fit on training users only
(SPEC.md "Targets"): users are split by cohort, stratified by churn, with a seeded hash so a re-run gives
the same assignment. The thresholds are returned and stored with the asset; :data:`SCORE_SQL` applies
them, so evaluation and scoring data reuse them instead of recomputing them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date

import duckdb

from churn_dagster.calendar import Calendar
from churn_dagster.transforms.cohorts import activity_paths, cohort_days_dts, cohort_paths
from churn_dagster.transforms.duck import DERIVED_DECIMALS, write_partitions
from churn_dagster.transforms.lake import Lake

LEVEL_NAMES = ("Churned", "At-Risk", "Regular", "Engaged", "Champion")


@dataclass(frozen=True)
class SplitSettings:
    train_fraction: float = 0.70
    validation_fraction: float = 0.15
    seed: int = 42


@dataclass(frozen=True)
class Thresholds:
    """P95 caps for intensity and quality, fit on the active users of one cohort's training split."""

    cohort: str
    p95_impressions: float
    p95_quality_raw: float
    fitted_on_users: int

    def as_dict(self) -> dict:
        return asdict(self)


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

THRESHOLDS_SQL = """
SELECT strftime(l.cohort_day, '%Y-%m-%d'),
       quantile_cont(l.impressions, 0.95), quantile_cont(l.quality_raw, 0.95), count(*)
FROM _label_activity l JOIN _splits s USING (user_id, cohort_day)
WHERE s.split = 'train' AND NOT l.churned
GROUP BY l.cohort_day
"""

# Levels from the score (SPEC.md): 0 Churned, then (0, 0.3], (0.3, 0.5], (0.5, 0.7], (0.7, 1].
LEVEL_SQL = "CASE WHEN churned THEN 0 WHEN score <= 0.3 THEN 1 WHEN score <= 0.5 THEN 2 WHEN score <= 0.7 THEN 3 ELSE 4 END"

# min(x / P95, 1); a zero P95 (no training user clicked) maps any positive x to 1 and zero to 0.
_CAP = "CASE WHEN {p95} > 0 THEN least({x} / {p95}, 1.0) ELSE ({x} > 0)::DOUBLE END"
SCORE_SQL = f"""
SELECT *, {LEVEL_SQL} AS level
FROM (
    -- Rounded before the level is taken: F = 1, I = 1, Q = 0 is exactly 0.7 (Engaged), not 0.7000000000000001.
    SELECT *, round(0.3 * frequency + 0.4 * intensity + 0.3 * quality, {DERIVED_DECIMALS}) AS score
    FROM (
        SELECT l.*, s.split,
               {_CAP.format(x="l.impressions", p95="t.p95_impressions")} AS intensity,
               {_CAP.format(x="l.quality_raw", p95="t.p95_quality_raw")} AS quality
        FROM _label_activity l JOIN _splits s USING (user_id, cohort_day) JOIN _thresholds t USING (cohort_day)
    )
)
"""


def build_labels(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    calendar: Calendar,
    cohorts: list[date],
    split: SplitSettings,
) -> tuple[dict[date, int], dict[date, Thresholds]]:
    """Write ``user_splits`` and ``label_scores`` for each cohort; return row counts and thresholds."""
    con.execute(
        LABEL_ACTIVITY_SQL,
        {
            "cohort_paths": cohort_paths(lake, "cohort_users", cohorts, "label_scores"),
            "activity_paths": activity_paths(lake, calendar, cohort_days_dts(calendar, cohorts, "label"), "label_scores"),
            "label_days": float(calendar.label_days),
        },
    )
    con.execute(SPLIT_SQL, {"train": split.train_fraction, "validation": split.validation_fraction, "seed": str(split.seed)})
    thresholds = {
        date.fromisoformat(c): Thresholds(c, float(p_imp), float(p_q), int(n))
        for c, p_imp, p_q, n in con.execute(THRESHOLDS_SQL).fetchall()
    }
    missing = [c for c in cohorts if c not in thresholds]
    if missing:
        raise ValueError(
            f"cohort(s) {', '.join(map(str, missing))}: no active user in the training split, so the P95 "
            "thresholds of the engagement score are undefined (too few users?)"
        )
    con.execute("CREATE OR REPLACE TEMP TABLE _thresholds (cohort_day DATE, p95_impressions DOUBLE, p95_quality_raw DOUBLE)")
    con.executemany(
        "INSERT INTO _thresholds VALUES (?, ?, ?)",
        [(c, t.p95_impressions, t.p95_quality_raw) for c, t in thresholds.items()],
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE _scores AS {SCORE_SQL}")
    write_partitions(con, "_splits", "cohort_day", {c: lake.cohort("user_splits", c) for c in cohorts}, "user_id")
    rows = write_partitions(con, "_scores", "cohort_day", {c: lake.cohort("label_scores", c) for c in cohorts}, "user_id")
    for table in ("_label_activity", "_splits", "_thresholds", "_scores"):
        con.execute(f"DROP TABLE {table}")
    return rows, thresholds
