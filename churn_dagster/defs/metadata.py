"""Materialization metadata shown in the Dagster UI: row counts, schema, previews and distributions.

Everything is read back from the Parquet files just written, so the UI shows what is on disk.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from churn_dagster.transforms.duck import literal_paths

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


def query_markdown(con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any] | None = None) -> str:
    cur = con.execute(sql, dict(params or {}))
    header = [d[0] for d in cur.description]
    return markdown_table(header, cur.fetchall())


def parquet_metadata(con: duckdb.DuckDBPyConnection, paths: Sequence[Path]) -> dict[str, Any]:
    """Row count, column schema and a preview of the first file, for the standard metadata keys."""
    files = literal_paths(paths)
    rows = con.execute(
        "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata($f)", {"f": files}
    ).fetchone()[0]
    described = con.execute("DESCRIBE SELECT * FROM read_parquet($f, hive_partitioning = false)", {"f": files}).fetchall()
    schema = dg.TableSchema(columns=[dg.TableColumn(name=c[0], type=c[1]) for c in described])
    preview = query_markdown(
        con, f"SELECT * FROM read_parquet($f, hive_partitioning = false) LIMIT {PREVIEW_ROWS}", {"f": files[:1]}
    )
    return {
        "dagster/row_count": dg.MetadataValue.int(int(rows)),
        "dagster/column_schema": schema,
        "preview": dg.MetadataValue.md(preview),
        "files": dg.MetadataValue.int(len(files)),
        "path": dg.MetadataValue.path(str(Path(paths[0]).parent.parent) if len(paths) > 1 else str(paths[0])),
    }


def per_partition_table(counts: Mapping[Any, int], value_name: str = "rows") -> dg.MetadataValue:
    return dg.MetadataValue.md(markdown_table(["partition", value_name], [(str(k), v) for k, v in sorted(counts.items())]))


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
