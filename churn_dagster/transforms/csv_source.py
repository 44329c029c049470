"""Opening one published CSV: header validation and the DuckDB ``read_csv`` call that parses it.

The header is checked by hand before DuckDB sees the file, so a renamed or missing column fails with the
file, line 1 and the column named, and the known typos of the real files are accepted. DuckDB then parses
with explicit types (no sniffing), the file's own null token, and ``store_rejects`` so that every line it
cannot parse is kept with its line number instead of being dropped.
"""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass
from pathlib import Path

from churn_dagster import ncm_format as fmt
from churn_dagster.errors import UserError

# The longest real swipe-down list (6,222 fields) is about 160 kB; DuckDB sizes its read buffer from this.
MAX_LINE_BYTES = 4 * 1024 * 1024


class BadInputError(UserError, ValueError):
    """A source file that cannot be read as published; the message names the file, line and column."""


def _first_line(path: Path) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as raw:
            line = raw.readline()
    except (OSError, EOFError) as exc:
        raise BadInputError(f"{path}: cannot be read ({exc})") from exc
    if not line:
        raise BadInputError(f"{path}: the file is empty; expected a header line")
    try:
        return line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path}, line 1: the header is not UTF-8 ({exc.reason})") from exc


def file_columns(spec: fmt.NcmFile, path: Path) -> list[fmt.Column]:
    """The spec's columns in the order the file's header lists them; fail on unknown or missing names."""
    header = next(csv.reader(io.StringIO(_first_line(path))))
    by_spelling = {name: col for col in spec.columns for name in (col.source, *col.aliases)}
    unknown = [h for h in header if h not in by_spelling]
    if unknown:
        expected = ", ".join(spec.header)
        raise BadInputError(
            f"{path}, line 1: unknown column(s) {', '.join(map(repr, unknown))}; expected the columns {expected}"
        )
    columns = [by_spelling[h] for h in header]
    missing = [c.source for c in spec.columns if c not in columns]
    if missing:
        raise BadInputError(f"{path}, line 1: missing column(s) {', '.join(map(repr, missing))}")
    if len(set(columns)) != len(columns):
        raise BadInputError(f"{path}, line 1: a column appears twice in the header {header}")
    return columns


@dataclass(frozen=True)
class CsvRead:
    """The SQL text and parameters that parse one file into canonical column names."""

    sql: str
    params: dict[str, object]


def read_csv_sql(spec: fmt.NcmFile, path: Path, rejects: str | None) -> CsvRead:
    """``SELECT <canonical columns> FROM read_csv(...)`` for one file.

    ``rejects`` names the table that collects unparseable lines (DuckDB fills it as a side effect);
    ``None`` turns rejection off, for scans that only re-read a file already validated.
    """
    columns = file_columns(spec, path)
    select = ", ".join(f'"{c.source}" AS {c.name}' for c in columns)
    reject_opts = (
        f", store_rejects = true, rejects_table = '{rejects}', rejects_scan = '{rejects}_scan'" if rejects else ""
    )
    sql = (
        f"SELECT {select} FROM read_csv($path, header = true, auto_detect = false, columns = $columns, "
        "delim = ',', quote = '\"', escape = '\"', nullstr = $null_token, "
        f"max_line_size = {MAX_LINE_BYTES}{reject_opts})"
    )
    params = {
        "path": str(path),
        "columns": {c.source: c.duck_type for c in columns},
        "null_token": spec.null_token,
    }
    return CsvRead(sql, params)
