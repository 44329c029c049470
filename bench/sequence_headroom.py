"""How much a churn model could gain from the order of sessions on a materialized data graph, in one minute.

The sequence models beat the KPI models only where the label depends on something the KPI table's totals,
halves and recency do not hold. This command measures that headroom directly: logistic regression and XGBoost
(default hyperparameters, random protocol of the last labelled cohort, the split of ``bench.twin_fidelity``)
on the KPI table alone, then with the window's per-day impressions, then also with the last five sessions
(day, impressions, clicks, hour, duration). Where the richer tables leave XGBoost's test AUC where it was, an
LSTM over the same sessions has nothing to add either; docs/SYNTHETIC.md ("Predictive fidelity") uses it to
test candidate mechanisms before the ten-minute ``bench.twin_fidelity`` run.

    python -m bench.sequence_headroom --data-dir DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb
import pandas as pd

from bench.model_protocols import partition_protocols
from churn_dagster.settings import settings_from_env
from churn_dagster.storage.duck import literal_paths
from churn_dagster.storage.lake import Lake, read_cohort_tables
from churn_dagster.studies.churn.config import DEFAULTS
from churn_dagster.studies.churn.ml.experiments import Protocol, classical_experiment

LAST_SESSIONS = 5
# (name, expression) of each last-session column; ln(1 + x) for the heavy-tailed counts.
SESSION_COLUMNS = (("day", "day_num"), ("impressions", "ln(1 + total_impressions)"), ("clicks", "total_clicks"),
                   ("hour", "hour_of_day"), ("minutes", "ln(1 + duration_min)"))


def per_day(con: duckdb.DuckDBPyConnection, paths: list[str], days: int) -> pd.DataFrame:
    """ln(1 + impressions) of each day of the window (day_num 1..days; 0 on days without a session)."""
    columns = ", ".join(f"ln(1 + coalesce(sum(total_impressions) FILTER (WHERE day_num = {k}), 0)) AS day{k}"
                        for k in range(1, days + 1))
    return con.execute(f"SELECT user_id, {columns} FROM read_parquet($paths, hive_partitioning = false) GROUP BY user_id",
                       {"paths": paths}).df()


def last_sessions(con: duckdb.DuckDBPyConnection, paths: list[str]) -> pd.DataFrame:
    """The last :data:`LAST_SESSIONS` sessions of each user, newest first, as columns (NaN where fewer)."""
    columns = ", ".join(f"any_value({expr}) FILTER (WHERE k = {k}) AS last{k}_{name}"
                        for k in range(1, LAST_SESSIONS + 1) for name, expr in SESSION_COLUMNS)
    return con.execute(f"""
        WITH ranked AS (SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY global_session_idx DESC) AS k
                        FROM read_parquet($paths, hive_partitioning = false))
        SELECT user_id, {columns} FROM ranked WHERE k <= {LAST_SESSIONS} GROUP BY user_id""", {"paths": paths}).df()


def headroom(lake: Lake, protocol: Protocol, days: int) -> dict[str, dict[str, float]]:
    """Test AUC of each family on each feature set."""
    cohorts = list(protocol.cohorts)
    kpi = read_cohort_tables(lake, "kpi_features", cohorts)
    labels = read_cohort_tables(lake, "label_scores", cohorts)
    paths = literal_paths([lake.cohort("sessions", c) for c in cohorts])
    with duckdb.connect() as con:
        with_days = kpi.merge(per_day(con, paths, days), on="user_id", how="left")
        with_sessions = with_days.merge(last_sessions(con, paths), on="user_id", how="left")
    tables = {"KPI": kpi, "KPI + per-day impressions": with_days,
              f"KPI + per-day + last {LAST_SESSIONS} sessions": with_sessions}
    return {name: {family: classical_experiment(family, "binary", table, labels, protocol, DEFAULTS[family][0])
                   .test_metrics["roc_auc"] for family in ("logreg", "xgboost")}
            for name, table in tables.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    settings = settings_from_env()
    protocol = partition_protocols(settings.calendar, settings.training_cohorts)[0]
    found = headroom(Lake(args.data_dir), protocol, settings.observation_days)
    base = found["KPI"]["xgboost"]
    print("| features | logistic regression | XGBoost | XGBoost gain over KPI |\n|---|---|---|---|")
    for name, aucs in found.items():
        print(f"| {name} | {aucs['logreg']:.4f} | {aucs['xgboost']:.4f} | {aucs['xgboost'] - base:+.4f} |")


if __name__ == "__main__":
    main()
