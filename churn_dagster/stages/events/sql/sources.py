"""Where an event log comes from: CSV or Parquet files (or folders of them), or a PostgreSQL table or
query, each able to say what columns it has, give a sample, and stage every record as text.

Staging writes one row per source record into a DuckDB table (``file``, ``line``, ``problem`` and one text
column per field asked for: ``columns`` maps each staged field to its source column, or to None for NULL) and returns the number of records counted independently of that parsing: the
newline bytes of a CSV file (:mod:`churn_dagster.stages.ingest.sql.lines`), the row counts in the Parquet
footers, a ``count(*)`` in the same PostgreSQL snapshot. A CSV line is the unit, as for the NCM files: a
line whose fields do not match the header, that is not UTF-8, or that is too long, is staged with its
``problem`` and later quarantined. File paths reach DuckDB literally.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from churn_dagster.errors import UserError
from churn_dagster.stages.events.sql import fast_lines
from churn_dagster.stages.events.sql.csv_split import LINE, csv_block_sql, without_bom
from churn_dagster.stages.events.sql.mapping import OPTIONAL_FIELDS
from churn_dagster.stages.ingest.sql.header import (
    header_fields,
    unreadable,
)
from churn_dagster.stages.ingest.sql.lines import (
    Latin1AsUtf8,
    LineCount,
    line_tables,
    open_source,
    read_header,
    without_newlines,
)
from churn_dagster.storage.duck import literal_path

FIELDS = ("user_id", "event_time", *OPTIONAL_FIELDS)
CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz")
PARQUET_SUFFIXES = (".parquet",)
SAMPLE_ROWS = 1000


class SourceError(UserError, ValueError):
    """A source that cannot be read as configured; the message names it and the YAML key to change."""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _suffix_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


@dataclass(frozen=True)
class FileSource:
    """CSV or Parquet files; a folder stands for its files of that kind (sorted, recursively).

    A CSV file's first line names its columns, unless ``names`` are given: then every line is a record
    (line 1 the first) and the first line must have as many fields as there are names. ``encoding`` is
    utf-8 or latin-1 (ISO-8859-1, which older exports use); latin-1 is transcoded as it is read. Without
    ``quoted`` a quote is an ordinary character (tab-separated dumps of titles such as ``12" Mix``)."""

    paths: tuple[Path, ...]
    format: str = "csv"
    delimiter: str = ","
    names: tuple[str, ...] = ()
    encoding: str = "utf-8"
    quoted: bool = True
    fast: bool = True  # canonical lines split by Arrow (fast_lines); False: every line the exact SQL way

    @property
    def kind(self) -> str:
        """The Dagster kind of the source: csv or parquet."""
        return self.format

    def files(self) -> list[Path]:
        found: list[Path] = []
        for path in self.paths:
            if path.is_dir():
                inside = sorted(p for p in path.rglob("*") if p.is_file() and _suffix_kind(p) == self.format)
                if not inside:
                    raise SourceError(f"source.paths: folder {path} holds no {self.format} file")
                found.extend(inside)
            elif path.exists():
                found.append(path)
            else:
                raise SourceError(f"source.paths: {path} does not exist")
        return found

    def columns(self) -> list[str]:
        files = self.files()
        first = self._columns(files[0])
        for other in files[1:]:
            if (cols := self._columns(other)) != first:
                raise SourceError(f"{other}: its columns {cols} differ from those of {files[0]} ({first}); "
                                  "every file of a source must have the same columns")
        return first

    def _columns(self, path: Path) -> list[str]:
        if self.format == "parquet":
            try:
                return pq.read_schema(path).names
            except (OSError, pa.ArrowInvalid) as exc:
                raise SourceError(f"{path}: not a readable Parquet file ({exc})") from exc
        names = header_fields(path, self.delimiter, self.encoding, self.quoted)
        if self.names:
            if len(names) != len(self.names):
                raise SourceError(f"{path}, line 1: {len(names)} fields, but source.columns names "
                                  f"{len(self.names)}; is the delimiter {self.delimiter!r} right (source.delimiter)?")
            return list(self.names)
        if len(names) < 2:
            raise SourceError(f"{path}, line 1: one column {names[0]!r} in the header; is the delimiter "
                              f"{self.delimiter!r} right (source.delimiter)?")
        return [n.removeprefix("\ufeff") for n in names]

    def label(self) -> str:
        return ", ".join(str(p) for p in self.paths)

    def stage(self, con: duckdb.DuckDBPyConnection, columns: dict[str, str], table: str,
              limit: int | None = None) -> int:
        """Stage every record of every file (the first ``limit`` of the first file for a sample); the
        records counted independently of the staging."""
        counted = 0
        for path in self.files():
            if self.format == "parquet":
                counted += self._stage_parquet(con, path, columns, table, limit)
            else:
                counted += self._stage_csv(con, path, columns, table, limit)
            if limit is not None:
                break
        return counted

    def _stage_parquet(self, con, path: Path, columns: dict[str, str], table: str, limit: int | None) -> int:
        picked = ", ".join(f"CAST({_ident(c)} AS VARCHAR)" if c else "NULL" for c in columns.values())
        con.execute(f"INSERT INTO {table} SELECT $file, file_row_number + 1, NULL, NULL, {picked} "
                    f"FROM read_parquet($path, file_row_number = true)"
                    + (f" WHERE file_row_number < {int(limit)}" if limit else ""),
                    {"file": str(path), "path": literal_path(path)})
        rows = pq.read_metadata(path).num_rows
        return min(rows, limit) if limit else rows

    def _stage_csv(self, con, path: Path, columns: dict[str, str], table: str, limit: int | None) -> int:
        names = self._columns(path)
        count = LineCount()
        sql = csv_block_sql(names, columns, self.delimiter, table,
                             "source.columns" if self.names else "the header's", self.quoted)
        fast = self.fast and fast_lines.usable(self.delimiter, self.quoted) and len(set(names)) == len(names)
        picked = ", ".join(_ident(c) if c else "NULL" for c in columns.values())
        fast_sql = f"INSERT INTO {table} SELECT $file, line, NULL, '{LINE}', {picked} FROM _fast"
        try:
            with open_source(path) as raw:
                stream = Latin1AsUtf8(raw) if self.encoding == "latin-1" else raw
                if not self.names:
                    read_header(stream)
                for block in line_tables(stream, count, first_line=2 if not self.names else 1):
                    if limit is not None:
                        block = block.slice(0, limit - count.lines_emitted + block.num_rows)
                    if self.names and block.num_rows and block.column("line")[0].as_py() == 1:
                        block = without_bom(block)
                    if fast:  # canonical lines split by Arrow, the rest by the exact SQL below
                        parsed, block = fast_lines.split_canonical(block, names, self.delimiter)
                        if parsed.num_rows:
                            con.register("_fast", parsed)
                            con.execute(fast_sql, {"file": str(path)})
                            con.unregister("_fast")
                    if block.num_rows:
                        con.register("_block", without_newlines(block))
                        con.execute(sql, {"file": str(path)})
                        con.unregister("_block")
                    if limit is not None and count.lines_emitted >= limit:
                        return limit
        except (OSError, EOFError, zlib.error) as exc:
            raise unreadable(path, exc, count.lines_emitted + 1) from exc
        return count.lines


@dataclass(frozen=True)
class PostgresSource:
    """A table or a query of a PostgreSQL database, read as Arrow batches in one snapshot (``uri``: a libpq
    URI; its password best comes from the environment through ``{{ env('...') }}`` in the YAML)."""

    uri: str
    table: str | None = None
    query: str | None = None
    kind = "postgres"

    def _relation(self) -> str:
        if bool(self.table) == bool(self.query):
            raise SourceError("source: give exactly one of table and query for a PostgreSQL source")
        if self.table:
            return ".".join(_ident(part) for part in self.table.split("."))
        return f"({self.query})"

    def label(self) -> str:
        return f"postgresql:{self.table or 'query'}"

    def _connect(self):
        import adbc_driver_postgresql.dbapi as pg

        try:
            return pg.connect(self.uri)
        except Exception as exc:  # the driver's errors carry the server's one-line reason
            raise SourceError(f"source.uri: cannot connect to PostgreSQL ({str(exc).splitlines()[0]})") from exc

    def columns(self) -> list[str]:
        with self._connect() as conn, conn.cursor() as cur:
            try:
                cur.execute(f"SELECT * FROM {self._relation()} AS _q LIMIT 0")
            except Exception as exc:
                raise SourceError(f"source: {self.label()} cannot be read ({str(exc).splitlines()[0]})") from exc
            return [d[0] for d in cur.description]

    def stage(self, con: duckdb.DuckDBPyConnection, columns: dict[str, str], table: str,
              limit: int | None = None) -> int:
        picked = ", ".join(f"{_ident(c)}::text AS {f}" if c else f"NULL::text AS {f}" for f, c in columns.items())
        order = ", ".join(str(k + 1) for k in range(len(columns)))
        with self._connect() as conn:
            conn.autocommit = False
            with conn.cursor() as cur:
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                if limit:  # a sample for the mapping check: the first rows the server hands out, no sort
                    counted = None
                    cur.execute(f"SELECT {picked} FROM {self._relation()} AS _q LIMIT {int(limit)}")
                else:
                    cur.execute(f"SELECT count(*) FROM {self._relation()} AS _q")
                    counted = int(cur.fetchone()[0])
                    cur.execute(f"SELECT {picked} FROM {self._relation()} AS _q ORDER BY {order} NULLS FIRST")
                reader = cur.fetch_record_batch()
                first = 1
                for batch in reader:
                    rows = pa.Table.from_batches([batch]).append_column(
                        "_row", pa.array(range(first, first + batch.num_rows), pa.int64()))
                    con.register("_batch", rows)
                    con.execute(f"INSERT INTO {table} SELECT $file, _row, NULL, NULL, {', '.join(columns)} FROM _batch",
                                {"file": self.label()})
                    con.unregister("_batch")
                    first += batch.num_rows
            conn.rollback()
        return first - 1 if limit else counted


def create_staging(con: duckdb.DuckDBPyConnection, table: str, fields) -> None:
    """The staging table of ``fields`` (text columns), after the record's file, line and line problem."""
    columns = ", ".join(f"{f} VARCHAR" for f in fields)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} (file VARCHAR, line BIGINT, problem VARCHAR, "
                f"column_name VARCHAR, {columns})")


def event_columns(mapped: dict[str, str]) -> dict[str, str | None]:
    """Every contract field, staged from its mapped column or as NULL, then the mapping's flag columns."""
    return {**{f: mapped.get(f) for f in FIELDS}, **{f: c for f, c in mapped.items() if f not in FIELDS}}

