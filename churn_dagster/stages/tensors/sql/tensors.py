"""Sequence tensors: each user's sessions as a ragged float32 array, plus the static vector and the labels.

Padded to 192 sessions, 841k users would take 15.5 GB of mostly zeros, so the sessions of all users are
stored back to back (``sequences.npy``, shape ``[total_sessions, 24]``) with ``offsets.npy`` marking where
each user starts; both open memory-mapped and a batch is padded when it is drawn. Users with more than
``max_sessions`` sessions keep their most recent ones.

Counts, durations and gaps are heavy-tailed, so they enter as ``log1p``; periodic fields as sin/cos. Values
are stored raw, a missing static value (age, registered months) as NaN: imputation and standardisation are
fit by each model on the training users of its own protocol (``stages/tensors/ml/data.py``), never here, where they could
only be fit per cohort. What a fit needs is stored beside the arrays in ``normalization.json``: the mean
and standard deviation of every sequence feature over this cohort's training sessions (pooled exactly
across cohorts) and the static feature names. ``users.parquet`` carries the label-period components from
which a protocol derives each user's level with its own thresholds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
from numpy.lib.format import open_memmap

from churn_dagster.storage.duck import atomic_dir, exact_avg, literal_path
from churn_dagster.storage.lake import Lake, require

TWO_PI = "(2 * pi())"
SEQUENCE_FEATURES: tuple[tuple[str, str], ...] = (
    ("global_session_idx", "ln(1 + global_session_idx)"),
    ("daily_session_idx", "ln(1 + daily_session_idx)"),
    ("day_num", "day_num"),
    ("is_new_day", "(daily_session_idx = 1)::DOUBLE"),
    ("duration", "ln(1 + duration_min)"),
    ("gap", "CASE WHEN gap_min < 0 THEN -1 ELSE ln(1 + gap_min) END"),
    ("hour_sin", f"sin({TWO_PI} * hour_of_day / 24)"),
    ("hour_cos", f"cos({TWO_PI} * hour_of_day / 24)"),
    ("weekday_sin", f"sin({TWO_PI} * weekday / 7)"),
    ("weekday_cos", f"cos({TWO_PI} * weekday / 7)"),
    ("max_impress_position", "ln(1 + max_impress_position)"),
    ("total_impressions", "ln(1 + total_impressions)"),
    ("total_clicks", "ln(1 + total_clicks)"),
    ("total_likes", "ln(1 + total_likes)"),
    ("total_shares", "ln(1 + total_shares)"),
    ("total_comments", "ln(1 + total_comments)"),
    ("total_into_homepage", "ln(1 + total_into_homepage)"),
    ("total_view_comments", "ln(1 + total_view_comments)"),
    ("ctr", "ctr"),
    ("interaction_rate", "interaction_rate"),
    ("like_rate", "like_rate"),
    ("share_rate", "share_rate"),
    ("comment_rate", "comment_rate"),
    ("watch_min", "ln(1 + view_time_s / 60)"),
)
STATIC_FEATURES: tuple[tuple[str, str], ...] = (
    ("gender_male", "gender_male"),
    ("gender_female", "gender_female"),
    ("gender_unknown", "gender_unknown"),
    ("age", "age"),
    ("age_missing", "age_missing"),
    ("registered_months", "registered_months"),
    # Only when the static table carries it: followCnt is measured after the label period (off by default).
    ("follow_count", "ln(1 + follow_count)"),
    ("active_days", "active_days"),
    ("total_sessions", "ln(1 + total_sessions)"),
    ("avg_daily_sessions", "avg_daily_sessions"),
    ("avg_session_impressions", "ln(1 + avg_session_impressions)"),
    ("avg_session_duration", "ln(1 + avg_session_duration_min)"),
    ("avg_session_clicks", "ln(1 + avg_session_clicks)"),
    ("avg_session_watch_min", "ln(1 + avg_session_watch_min)"),
    ("avg_session_likes", "ln(1 + avg_session_likes)"),
    ("avg_session_shares", "ln(1 + avg_session_shares)"),
    ("avg_session_comments", "ln(1 + avg_session_comments)"),
    ("user_ctr", "user_ctr"),
)

USERS_SQL = """
CREATE OR REPLACE TEMP TABLE _users AS
SELECT (row_number() OVER (ORDER BY f.user_id) - 1)::BIGINT AS row_idx, f.*,
       l.split, l.churned, l.frequency, l.impressions, l.quality_raw,
       least(f.total_sessions, $max_sessions) AS kept_sessions
FROM read_parquet($static_path, hive_partitioning = false) f
JOIN read_parquet($labels_path, hive_partitioning = false) l USING (user_id)
"""
# The scoring window has no labels yet: every user is to be scored.
UNLABELLED_USERS_SQL = """
CREATE OR REPLACE TEMP TABLE _users AS
SELECT (row_number() OVER (ORDER BY f.user_id) - 1)::BIGINT AS row_idx, f.*,
       'score' AS split, NULL::BOOLEAN AS churned, NULL::DOUBLE AS frequency, NULL::BIGINT AS impressions,
       NULL::DOUBLE AS quality_raw, least(f.total_sessions, $max_sessions) AS kept_sessions
FROM read_parquet($static_path, hive_partitioning = false) f
"""
USER_COLUMNS = ("row_idx", "user_id", "cohort_day", "split", "churned", "frequency", "impressions", "quality_raw",
                "total_sessions", "kept_sessions")


@dataclass(frozen=True)
class TensorSummary:
    users: int
    sessions: int
    truncated_users: int
    split_counts: dict[str, int]


def _sequence_query() -> str:
    cols = ", ".join(f"({expr})::DOUBLE AS {name}" for name, expr in SEQUENCE_FEATURES)
    return f"""
        SELECT u.row_idx, u.split, s.global_session_idx AS session_order, {cols}
        FROM read_parquet($sessions_path, hive_partitioning = false) s JOIN _users u USING (user_id)
        WHERE s.global_session_idx > u.total_sessions - $max_sessions"""


def _train_moments(con: duckdb.DuckDBPyConnection, names: list[str]) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of each sequence feature over the training sessions (zeros without any).
    Both are exact sums (``storage.duck.exact_avg``), the variance in a second pass around the exact means, so
    that the order in which a parallel aggregate adds cannot change the stored bytes."""
    train = "FROM _seq WHERE split = 'train'"
    means = [float(m or 0) for m in con.execute(f"SELECT {', '.join(exact_avg(n) for n in names)} {train}").fetchone()]
    squares = ", ".join(exact_avg(f"({n} - ${k}) * ({n} - ${k})") for k, n in enumerate(names, start=1))
    variances = con.execute(f"SELECT {squares} {train}", means).fetchone()
    return means, [float(np.sqrt(v)) if v else 0.0 for v in variances]


def static_features_of(con: duckdb.DuckDBPyConnection, static_path: Path) -> list[tuple[str, str]]:
    """The static features this cohort's table supports (follow_count only where it was kept)."""
    columns = {r[0] for r in con.execute(
        "DESCRIBE SELECT * FROM read_parquet($p, hive_partitioning = false)", {"p": literal_path(static_path)}
    ).fetchall()}
    return [(name, expr) for name, expr in STATIC_FEATURES if name != "follow_count" or "follow_count" in columns]


def build_tensors(con: duckdb.DuckDBPyConnection, lake: Lake, cohort: date, max_sessions: int,
                  labelled: bool = True) -> TensorSummary:
    """Write the tensors of one cohort (``labelled=False``: the scoring window, which has no labels yet).
    A cohort without users gets a complete, empty set of files."""
    static_path, sessions_path = require(
        [lake.cohort("static_features", cohort), lake.cohort("sessions", cohort)], "sequence_tensors"
    )
    params = {"max_sessions": max_sessions, "static_path": literal_path(static_path)}
    if labelled:
        labels_path = require([lake.cohort("label_scores", cohort)], "sequence_tensors")[0]
        con.execute(USERS_SQL, {**params, "labels_path": literal_path(labels_path)})
    else:
        con.execute(UNLABELLED_USERS_SQL, params)
    static_features = static_features_of(con, static_path)
    static_cols = ", ".join(f"({expr})::DOUBLE AS {name}" for name, expr in static_features)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _static_x AS SELECT row_idx, {static_cols} FROM _users")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _seq AS {_sequence_query()}",
        {"max_sessions": max_sessions, "sessions_path": literal_path(sessions_path)},
    )
    seq_names = [n for n, _ in SEQUENCE_FEATURES]
    static_names = [n for n, _ in static_features]
    train_mean, train_std = _train_moments(con, seq_names)
    train_users, train_sessions = con.execute(
        "SELECT count(*), coalesce(sum(kept_sessions), 0) FROM _users WHERE split = 'train'"
    ).fetchone()

    kept = con.execute("SELECT kept_sessions FROM _users ORDER BY row_idx").fetchnumpy()["kept_sessions"]
    offsets = np.concatenate([[0], np.cumsum(kept, dtype=np.int64)])
    with atomic_dir(lake.tensors(cohort)) as out:
        np.save(out / "offsets.npy", offsets)
        _write_rows(con, f"SELECT {', '.join(seq_names)} FROM _seq ORDER BY row_idx, session_order",
                    out / "sequences.npy", int(offsets[-1]), len(seq_names))
        _write_rows(con, f"SELECT {', '.join(static_names)} FROM _static_x ORDER BY row_idx",
                    out / "static.npy", len(kept), len(static_names))
        con.execute(
            f"COPY (SELECT {', '.join(USER_COLUMNS)} FROM _users ORDER BY row_idx) TO $p (FORMAT parquet)",
            {"p": str(out / "users.parquet")},
        )
        meta = {
            "cohort": cohort.isoformat(),
            "max_sessions": max_sessions,
            "users": len(kept),
            "sessions": int(offsets[-1]),
            "train_users": int(train_users),
            "train_sessions": int(train_sessions),
            "sequence": {"features": seq_names, "train_mean": train_mean, "train_std": train_std},
            "static": {"features": static_names, "missing_as": "NaN"},
        }
        (out / "normalization.json").write_text(json.dumps(meta, indent=2))
    splits = dict(con.execute("SELECT split, count(*) FROM _users GROUP BY split").fetchall())
    truncated = con.execute("SELECT count_if(total_sessions > kept_sessions) FROM _users").fetchone()[0]
    for table in ("_users", "_static_x", "_seq"):
        con.execute(f"DROP TABLE {table}")
    return TensorSummary(len(kept), int(offsets[-1]), int(truncated or 0), splits)


def _write_rows(con: duckdb.DuckDBPyConnection, query: str, path: Path, rows: int, width: int) -> None:
    """Stream ``query`` in record batches into a float32 ``.npy`` file (NULL becomes NaN)."""
    out = open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, width))
    start = 0
    for batch in con.sql(query).to_arrow_reader(262_144):
        block = np.column_stack([col.to_numpy(zero_copy_only=False) for col in batch.columns]).astype(np.float32)
        out[start : start + len(block)] = block
        start += len(block)
    if start != rows:
        raise RuntimeError(f"{path.name}: wrote {start} rows, expected {rows}")
    out.flush()
    del out
