"""Calibration report: the generator's figures against the real-data targets, computed from the written files.

The figures are read back from the CSVs with DuckDB, each file with its own null token and column types from
:mod:`churn_dagster.domain.ncm_format`, so the report checks what a loader would see, not the generator's arrays.
Targets come from ``ncm_data_facts.md`` §7 and ``SPEC.md``; a figure is within tolerance at +-20% relative.

``churn-dagster calibrate --source DIR`` prints the report for a folder of files.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import duckdb

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.storage.duck import literal_path

TOLERANCE = 0.20


@dataclass(frozen=True)
class CalibrationFigure:
    """One figure of the report: its value in the files, the real-data target, and the relative gap."""

    name: str
    value: float
    target: float
    tolerance: float = TOLERANCE

    @property
    def relative_error(self) -> float:
        if self.target == 0:
            return 0.0 if self.value == 0 else float("inf")
        return (self.value - self.target) / self.target

    @property
    def within_tolerance(self) -> bool:
        return abs(self.relative_error) <= self.tolerance


# name -> (target, SQL over the views of :func:`connect`); the cohort view holds users first seen in dt 1-7.
_FIGURES: dict[str, tuple[float, str]] = {
    "impressions per user, median": (8.0, "SELECT median(impressions) FROM per_user"),
    "impressions per user, mean": (26.7, "SELECT avg(impressions) FROM per_user"),
    "mean per-user CTR": (0.02338, "SELECT avg(clicks / impressions) FROM per_user"),
    "pooled CTR": (0.048, "SELECT sum(clicks) / sum(impressions) FROM per_user"),
    "share first seen dt 1-7": (0.404, "SELECT avg((first_dt <= 7)::INT) FROM per_user"),
    "inactive in label week (dt 1-7 cohort)": (0.615, "SELECT avg(inactive::INT) FROM cohort_scores"),
    "Champion share (dt 1-7 cohort)": (0.013, "SELECT avg((level = 4)::INT) FROM cohort_scores"),
    "missing age/gender share": (0.3555, "SELECT avg((age IS NULL)::INT) FROM user_demographics"),
}


def _source_path(source_dir: Path, f: fmt.NcmFile) -> Path:
    plain = source_dir / f"{f.stem}.csv"
    return plain if plain.exists() else source_dir / f"{f.stem}.csv.gz"


def read_view_sql(source_dir: Path, f: fmt.NcmFile) -> str:
    """A SELECT reading one file with its null token and declared types, columns renamed to canonical names."""
    path = literal_path(_source_path(source_dir, f)).replace("'", "''")
    types = ", ".join(f"'{c.source}': '{c.duck_type}'" for c in f.columns)
    names = ", ".join(f'"{c.source}" AS {c.name}' for c in f.columns)
    null = f.null_token.replace("'", "''")
    return (
        f"SELECT {names} FROM read_csv('{path}', header = true, delim = ',', quote = '\"', "
        f"nullstr = '{null}', columns = {{{types}}})"
    )


def engagement_score_sql(impressions: str, cohort: str, label_days: int) -> str:
    """SPEC engagement score of each cohort user over their label period.

    ``cohort`` must have ``user_id``, ``label_first`` and ``label_last`` (dt bounds, inclusive). F = active
    days / label_days, I = min(impressions / P95, 1), Q = min(Qraw / P95, 1) with Qraw = (clicks + 2 likes +
    3 shares + 4 comments) / impressions; both P95 are taken over the cohort's active users. Score =
    0.3 F + 0.4 I + 0.3 Q, 0 for users without impressions; level 0 Churned, 1 (0, .3], 2 (.3, .5],
    3 (.5, .7], 4 Champion (.7, 1].
    """
    return f"""
        WITH label AS (
            SELECT c.user_id,
                   count(i.user_id) AS impressions,
                   count(DISTINCT i.dt) AS active_days,
                   coalesce(sum(i.is_click::INT), 0) AS clicks,
                   coalesce(sum(i.is_like::INT), 0) AS likes,
                   coalesce(sum(i.is_share::INT), 0) AS shares,
                   coalesce(sum(i.is_comment::INT), 0) AS comments
            FROM {cohort} c
            LEFT JOIN {impressions} i
              ON i.user_id = c.user_id AND i.dt BETWEEN c.label_first AND c.label_last
            GROUP BY c.user_id
        ),
        quality AS (
            SELECT *, CASE WHEN impressions > 0
                           THEN (clicks + 2 * likes + 3 * shares + 4 * comments) / impressions END AS q_raw
            FROM label
        ),
        p95 AS (
            SELECT quantile_cont(impressions, 0.95) AS p_impressions, quantile_cont(q_raw, 0.95) AS p_quality
            FROM quality WHERE impressions > 0
        ),
        scored AS (
            SELECT user_id, impressions = 0 AS inactive,
                   CASE WHEN impressions = 0 THEN 0.0 ELSE
                        0.3 * active_days / {label_days}
                        + 0.4 * least(impressions / p_impressions, 1.0)
                        + 0.3 * coalesce(least(q_raw / nullif(p_quality, 0), 1.0), 0.0) END AS score
            FROM quality, p95
        )
        SELECT user_id, inactive, score,
               CASE WHEN inactive THEN 0 WHEN score <= 0.3 THEN 1 WHEN score <= 0.5 THEN 2
                    WHEN score <= 0.7 THEN 3 ELSE 4 END AS level
        FROM scored
    """


def connect(
    source_dir: str | Path,
    *,
    start_date: _dt.date = _dt.date(2019, 11, 1),
    observation_days: int = 14,
    label_days: int = 7,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with views over the files: impressions, user_demographics, per_user, cohort, cohort_scores.

    Days are counted from ``start_date`` on the Asia/Shanghai calendar of ``impressTime`` (``dt`` is replaced by
    that count, which equals the file's dt when the file is consistent). The cohort is the users first seen in
    days 1..7 (the reference study's cohorts); the label period is f+observation_days ..
    f+observation_days+label_days-1.
    """
    source = Path(source_dir)
    first_day = (start_date - _dt.date(1970, 1, 1)).days
    local_day = f"(impress_time_ms // 1000 + {fmt.SHANGHAI_UTC_OFFSET_SECONDS}) // 86400 - {first_day} + 1"
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(
        f"CREATE TABLE impressions AS SELECT * REPLACE (({local_day})::INTEGER AS dt) "
        f"FROM ({read_view_sql(source, fmt.IMPRESSIONS)})"
    )
    con.execute(f"CREATE VIEW user_demographics AS {read_view_sql(source, fmt.USER_DEMOGRAPHICS)}")
    con.execute(
        """CREATE TABLE per_user AS
           SELECT user_id, count(*) AS impressions, sum(is_click::INT) AS clicks, min(dt) AS first_dt
           FROM impressions GROUP BY user_id"""
    )
    con.execute(
        f"""CREATE VIEW cohort AS
            SELECT user_id, first_dt,
                   first_dt + {observation_days} AS label_first,
                   first_dt + {observation_days + label_days - 1} AS label_last
            FROM per_user WHERE first_dt <= 7"""
    )
    con.execute(f"CREATE TABLE cohort_scores AS {engagement_score_sql('impressions', 'cohort', label_days)}")
    return con


def calibration_report(
    source_dir: str | Path,
    *,
    start_date: _dt.date = _dt.date(2019, 11, 1),
    observation_days: int = 14,
    label_days: int = 7,
) -> list[CalibrationFigure]:
    """The figures of the generated (or real) files in ``source_dir`` against their targets (``start_date`` = day 1)."""
    con = connect(source_dir, start_date=start_date, observation_days=observation_days, label_days=label_days)
    try:
        return [
            CalibrationFigure(name, float(con.execute(sql).fetchone()[0]), target)
            for name, (target, sql) in _FIGURES.items()
        ]
    finally:
        con.close()


def format_report(figures: list[CalibrationFigure]) -> str:
    """A plain-text table: figure, generated value, target, relative error, within its tolerance."""
    width = max(len(f.name) for f in figures)
    lines = [f"{'figure':<{width}}  {'generated':>10}  {'target':>10}  {'rel.err':>8}  ok"]
    for f in figures:
        lines.append(
            f"{f.name:<{width}}  {f.value:>10.4g}  {f.target:>10.4g}  {f.relative_error:>+8.1%}  "
            f"{'yes' if f.within_tolerance else 'NO'}"
        )
    return "\n".join(lines)
