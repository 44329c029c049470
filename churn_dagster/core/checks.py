"""Data checks, each a query over the files an asset just wrote (and its inputs where a check recounts).

They return ``AssetCheckResult``s that the assets attach to their materialization, so a failing check
shows next to the run that produced the data. A count over no rows is 0 here (DuckDB's ``count_if`` and
``sum`` give NULL), so a run whose cohorts or days are all empty passes its checks.
"""

from __future__ import annotations

from datetime import date

import dagster as dg
import duckdb

from churn_dagster.core.metadata import check
from churn_dagster.domain import ncm_format as fmt
from churn_dagster.domain.calendar import Calendar
from churn_dagster.storage.duck import literal_paths
from churn_dagster.storage.lake import Lake


def _files(paths) -> list[str]:
    return literal_paths(paths)


def _one(con: duckdb.DuckDBPyConnection, sql: str, **params) -> tuple:
    return con.execute(sql, params).fetchone()


def label_start_ms_sql(calendar: Calendar, dt_column: str) -> str:
    """Epoch milliseconds of local midnight starting day ``dt_column`` (Asia/Shanghai)."""
    first_epoch_day = (calendar.first_day - date(1970, 1, 1)).days
    return f"(({first_epoch_day} + {dt_column} - 1)::BIGINT * 86400 - {fmt.SHANGHAI_UTC_OFFSET_SECONDS}) * 1000"


def unique_rows(con, name: str, files, key: str, asset_key: str | None = None) -> dg.AssetCheckResult:
    rows, distinct = _one(
        con, f"SELECT count(*), count(DISTINCT {key}) FROM read_parquet($f, hive_partitioning = false)", f=_files(files)
    )
    return check(name, rows == distinct, f"{rows} rows, {distinct} distinct {key}", asset_key, rows=rows, distinct=distinct)


def nothing_from_label_period(con, calendar: Calendar, files, cohort_files, column: str,
                              asset_key: str | None = None) -> dg.AssetCheckResult:
    """Every user's latest input impression is before local midnight of their first label day (the
    ``label_start_dt`` of ``cohort_files``)."""
    bad, users = _one(
        con,
        f"""SELECT coalesce(count_if(x.{column} >= {label_start_ms_sql(calendar, 'u.label_start_dt')}), 0), count(*)
            FROM read_parquet($f, hive_partitioning = false) x
            JOIN read_parquet($u, hive_partitioning = false) u USING (user_id)""",
        f=_files(files),
        u=_files(cohort_files),
    )
    return check(
        "no_label_period_rows",
        bad == 0,
        f"{bad} of {users} rows carry an input time inside or after the label period",
        asset_key,
        violations=bad,
    )


def all_finite(con, name: str, files, columns: list[str]) -> dg.AssetCheckResult:
    """No NaN or infinite value in the numeric columns (NULL is allowed only where a column says missing)."""
    conds = " + ".join(f"coalesce(count_if(isnan({c}::DOUBLE) OR isinf({c}::DOUBLE)), 0)" for c in columns)
    bad = _one(con, f"SELECT {conds} FROM read_parquet($f, hive_partitioning = false)", f=_files(files))[0]
    return check(name, bad == 0, f"{bad} NaN or infinite values in {len(columns)} numeric columns", violations=bad)


def numeric_columns(con, files) -> list[str]:
    described = con.execute(
        "DESCRIBE SELECT * FROM read_parquet($f, hive_partitioning = false)", {"f": _files(files)}
    ).fetchall()
    numeric = ("DOUBLE", "FLOAT", "BIGINT", "INTEGER", "HUGEINT", "DECIMAL")
    return [name for name, typ, *_ in described if typ.startswith(numeric)]


def one_row_per_cohort_user(con, files, cohort_files, asset_key: str | None = None) -> dg.AssetCheckResult:
    rows, distinct, expected = _one(
        con,
        """SELECT (SELECT count(*) FROM read_parquet($f, hive_partitioning = false)),
                  (SELECT count(DISTINCT user_id) FROM read_parquet($f, hive_partitioning = false)),
                  (SELECT count(*) FROM read_parquet($u, hive_partitioning = false))""",
        f=_files(files),
        u=_files(cohort_files),
    )
    return check(
        "one_row_per_cohort_user",
        rows == distinct == expected,
        f"{rows} rows, {distinct} users, {expected} cohort users",
        asset_key,
    )


def lake_paths(lake: Lake, table: str, cohorts: list[date]):
    return [lake.cohort(table, c) for c in cohorts]
