"""Write a window's scores into a PostgreSQL table the CRM reads: created when missing, and the window's
rows replaced in one transaction (an upsert by user and window that also drops users no longer scored), so
a reader sees the previous window's scores or the new ones, never a mix."""

from __future__ import annotations

import re

import pyarrow as pa

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_TYPES = {pa.string(): "text", pa.large_string(): "text", pa.float64(): "double precision", pa.int64(): "bigint",
          pa.int32(): "integer", pa.date32(): "date", pa.bool_(): "boolean"}


def _column_type(t: pa.DataType) -> str:
    if t not in _TYPES:
        raise ValueError(f"no PostgreSQL type for Arrow {t}")
    return _TYPES[t]


def upsert_window(uri: str, table_name: str, rows: pa.Table, window_column: str, key_column: str) -> int:
    """Replace the rows of ``rows``' window (one value of ``window_column``) in ``table_name``; the rows written."""
    import adbc_driver_postgresql.dbapi as pg

    if not _NAME.match(table_name):
        raise ValueError(f"scores_table.table: {table_name!r} is not a plain [schema.]table name")
    windows = rows.column(window_column).unique().to_pylist()
    if len(windows) != 1:
        raise ValueError(f"the rows hold {len(windows)} windows; write one window at a time")
    columns = ", ".join(f"{f.name} {_column_type(f.type)}" for f in rows.schema)
    staging = "_churn_scores_staging"
    with pg.connect(uri) as conn:
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE IF NOT EXISTS {table_name} ({columns}, PRIMARY KEY ({key_column}, {window_column}))")
            cur.adbc_ingest(staging, rows, mode="create", temporary=True)
            cur.execute(f"DELETE FROM {table_name} WHERE {window_column} = (SELECT min({window_column}) FROM {staging})")
            names = ", ".join(rows.schema.names)
            cur.execute(f"INSERT INTO {table_name} ({names}) SELECT {names} FROM {staging}")
            cur.execute(f"DROP TABLE {staging}")
        conn.commit()
    return rows.num_rows
