"""Materialization metadata shown in the Dagster UI: row counts, schema, previews and distributions.

Everything is read back from the Parquet files just written, so the UI shows what is on disk. Tables are
Dagster table metadata (typed columns the UI sorts), except the report texts, which stay Markdown. A run that
materializes several partitions (a single-run backfill) gives each partition its own row count, preview and
tables (:func:`add_partition_metadata`); what the run's metadata holds applies to all of them (the schema).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from churn_dagster.storage.duck import literal_paths

PREVIEW_ROWS = 8
MAX_CELL_CHARS = 40


def _cell(value: Any) -> str:
    text = "" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def frame_markdown(frame) -> str:
    """A pandas DataFrame as a Markdown table (no index)."""
    return markdown_table([str(c) for c in frame.columns], frame.itertuples(index=False))


def _plain(value: Any) -> Any:
    """A value as table metadata holds it: Python scalars, ``None`` for missing."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float):
        return None if value != value else value
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def _column_type(values: Sequence[Any]) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float"
    return "string"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> dg.TableMetadataValue:
    """Rows as a Dagster table: column types inferred from the values, so the UI sorts numbers as numbers."""
    rows = [[_plain(v) for v in row] for row in rows]
    types = [_column_type([row[i] for row in rows]) for i in range(len(header))]
    rows = [[v if t != "string" or v is None else str(v) for v, t in zip(row, types, strict=True)] for row in rows]
    schema = dg.TableSchema(columns=[dg.TableColumn(name=str(h), type=t) for h, t in zip(header, types, strict=True)])
    return dg.MetadataValue.table([dg.TableRecord(dict(zip(map(str, header), row, strict=True))) for row in rows], schema)


def frame_table(frame) -> dg.TableMetadataValue:
    """A pandas DataFrame as a Dagster table (no index)."""
    return table([str(c) for c in frame.columns], list(frame.itertuples(index=False)))


def query_table(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | None = None) -> dg.TableMetadataValue:
    cur = con.execute(sql, dict(params or {}))
    header = [d[0] for d in cur.description]
    return table(header, cur.fetchall())


def _preview(con: duckdb.DuckDBPyConnection, files: list[str]) -> dg.TableMetadataValue:
    return query_table(con, f"SELECT * FROM read_parquet($f, hive_partitioning = false) LIMIT {PREVIEW_ROWS}", {"f": files})


def _rows(con: duckdb.DuckDBPyConnection, files: list[str]) -> int:
    return int(con.execute("SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata($f)", {"f": files}).fetchone()[0])


def schema_metadata(con: duckdb.DuckDBPyConnection, paths: Sequence[Path]) -> dict[str, Any]:
    """The column schema of the files (the same for every partition of a run)."""
    described = con.execute("DESCRIBE SELECT * FROM read_parquet($f, hive_partitioning = false)",
                            {"f": literal_paths(paths)}).fetchall()
    return {"dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(name=c[0], type=c[1]) for c in described])}


def parquet_metadata(con: duckdb.DuckDBPyConnection, paths: Sequence[Path]) -> dict[str, Any]:
    """Row count, column schema, a preview and the path of an unpartitioned table's files."""
    files = literal_paths(paths)
    return {
        "dagster/row_count": dg.MetadataValue.int(_rows(con, files)),
        **schema_metadata(con, paths),
        "preview": _preview(con, files[:1]),
        "path": dg.MetadataValue.path(str(paths[0])),
    }


def add_partition_metadata(
    context: dg.AssetExecutionContext,
    con: duckdb.DuckDBPyConnection,
    files: Mapping[str, Path],
    extra: Callable[[str, Path], Mapping[str, Any]] | None = None,
    asset_key: str | None = None,
) -> None:
    """Give each partition of the run (``files``: partition key -> its Parquet file) its own row count, preview
    and path, plus ``extra(key, file)``, on its own materialization."""
    for key, path in files.items():
        one = literal_paths([path])
        meta = {"dagster/row_count": dg.MetadataValue.int(_rows(con, one)), "preview": _preview(con, one),
                "path": dg.MetadataValue.path(str(path))}
        if extra is not None:
            meta.update(extra(key, path))
        context.add_asset_metadata(meta, partition_key=key, asset_key=asset_key)


def check(
    name: str, passed: bool, description: str, asset_key: str | None = None, **metadata: Any
) -> dg.AssetCheckResult:
    """An asset check result whose description says what was verified, with the numbers behind it.

    ``asset_key`` is needed only in multi-assets, where a check must say which asset it belongs to.
    """
    return dg.AssetCheckResult(
        check_name=name,
        passed=bool(passed),
        description=description,
        asset_key=asset_key,
        metadata=dict(metadata),
    )


def image_markdown(path: Path, alt: str) -> str:
    """A PNG embedded in Markdown as a data URI, so the Dagster UI shows the plot itself."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"![{alt}](data:image/png;base64,{encoded})"
