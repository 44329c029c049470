"""The Polars baseline: the pandas baseline's steps as one lazy query on the streaming engine.

    python -m bench.polars_baseline --source DIR [--cohorts 7]

Written the way a Polars user would: ``scan_csv`` with the 9 needed columns and their types, a lazy plan
for the sessions and one for the labels, both collected together on the streaming engine (which shares the
scan and the first-appearance aggregate between them). The rules are those of :mod:`bench.baseline_common`;
sessions are numbered over the whole sorted window (a new one where the user changes or the gap is 30
minutes or more), which is the pandas per-user ``diff``/``cumsum`` without a group-by.
"""

from __future__ import annotations

import polars as pl

from bench import baseline_common as common

DTYPES = {"userId": pl.String, "mlogId": pl.String, "dt": pl.Int32, "impressTime": pl.Int64,
          "impressPosition": pl.Int32, **{c: pl.Int8 for c in ("isClick", "isLike", "isShare", "isComment")}}
COUNTS = common.LABEL_COLUMNS[1:-1]  # between the user and the churn flag


def scan(source: str) -> pl.LazyFrame:
    path = f"{source}/impression_data.csv"
    return pl.scan_csv(path, schema_overrides=DTYPES, null_values="NA").select(common.COLUMNS)


def plan(imp: pl.LazyFrame, cohorts: int) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Lazy sessions and labels of the users first seen on dt 1..``cohorts``."""
    first = imp.group_by("userId").agg(first_dt=pl.col("dt").min()).filter(pl.col("first_dt") <= cohorts)
    imp = imp.join(first, on="userId")
    dt, first_dt, observation = pl.col("dt"), pl.col("first_dt"), common.OBSERVATION_DAYS

    new_session = (pl.col("userId") != pl.col("userId").shift()) | (pl.col("impressTime").diff() >= common.GAP_MS)
    sessions = (
        imp.filter((dt >= first_dt) & (dt < first_dt + observation))
        .sort("userId", "impressTime", "impressPosition", "mlogId")
        .with_columns(session=new_session.fill_null(True).cum_sum())
        .group_by("userId", "session")
        .agg(start=pl.col("impressTime").min(), end=pl.col("impressTime").max(), impressions=pl.len(),
             clicks=pl.col("isClick").sum(), max_position=pl.col("impressPosition").max())
        .select(common.SESSION_COLUMNS)
    )

    period = (
        imp.filter((dt >= first_dt + observation) & (dt < first_dt + observation + common.LABEL_DAYS))
        .group_by("userId")
        .agg(impressions=pl.len(), active_days=dt.n_unique(), clicks=pl.col("isClick").sum(),
             likes=pl.col("isLike").sum(), shares=pl.col("isShare").sum(), comments=pl.col("isComment").sum())
    )
    labels = (
        first.select("userId").join(period, on="userId", how="left")
        .with_columns(pl.col(COUNTS).fill_null(0))
        .with_columns(churned=pl.col("impressions") == 0)
        .select(common.LABEL_COLUMNS)
    )
    return sessions, labels


def compute(imp: pl.LazyFrame, cohorts: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    sessions, labels = pl.collect_all(plan(imp, cohorts), engine="streaming")
    return sessions, labels


def run(source: str, cohorts: int, phase: common.Phases) -> dict:
    sessions, labels = compute(scan(source), cohorts)
    phase("query")
    return {"users": labels.height, "sessions": sessions.height, "churn_share": float(labels["churned"].mean())}


if __name__ == "__main__":
    common.main(__doc__, run)
