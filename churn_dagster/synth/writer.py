"""Byte-exact CSV output in the style of each real file, written atomically and in bounded memory.

Everything about a file's style comes from :mod:`churn_dagster.domain.ncm_format`: header spellings (typos included),
the null token (``NA``, empty, or ``""`` for empty strings of the R-style files), whether string fields and the
header are quoted, and the line terminator. Builders hand over Arrow tables with the canonical column names;
this module orders and renames them to the file's header.

DuckDB renders the CSV body because its writer quotes a field only when it must (the swipe-down lists contain
commas, the literal ``[]`` does not), can force quotes on the string columns of the R-style files, and takes a
null token and a line terminator. Each chunk goes to a part file that is appended to a temporary file in the
target folder; the temporary file replaces the target only when complete. With ``compress`` every part is its
own gzip member, which gzip readers, pandas and DuckDB read as one stream.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa

from churn_dagster.domain.ncm_format import NcmFile


def file_name(f: NcmFile, compress: bool) -> str:
    return f"{f.stem}.csv.gz" if compress else f"{f.stem}.csv"


def header_line(f: NcmFile) -> str:
    names = [f'"{name}"' if f.quote_strings else name for name in f.header]
    return ",".join(names) + f.line_terminator


def _sql_text(value: str) -> str:
    """A SQL string literal; control characters such as CR and LF go in verbatim, which DuckDB accepts."""
    return "'" + value.replace("'", "''") + "'"


class CsvFileWriter:
    """Writes one NCM file chunk by chunk; use as a context manager so a failure leaves no partial file."""

    def __init__(self, con: duckdb.DuckDBPyConnection, out_dir: Path, f: NcmFile, compress: bool):
        self.con, self.f = con, f
        self.path = out_dir / file_name(f, compress)
        self._tmp = out_dir / f".{self.path.name}.{os.getpid()}.tmp"
        self._part = out_dir / f".{self.path.name}.{os.getpid()}.part"
        self.rows = 0
        self._out = open(self._tmp, "wb")
        header = header_line(f).encode()
        self._out.write(gzip.compress(header, mtime=0) if compress else header)
        options = [
            "FORMAT csv",
            "HEADER false",
            f"NULLSTR {_sql_text(f.null_token)}",
            f"NEW_LINE {_sql_text(f.line_terminator)}",
        ]
        quoted = [c.source for c in f.columns if c.is_string]
        if f.quote_strings and quoted:
            options.append("FORCE_QUOTE (" + ", ".join(f'"{name}"' for name in quoted) + ")")
        if compress:
            options.append("COMPRESSION gzip")
        self._options = ", ".join(options)

    def write(self, table: pa.Table) -> None:
        """Append rows; ``table`` has the canonical column names of the file (any order)."""
        body = table.select([c.name for c in self.f.columns]).rename_columns(self.f.header)
        self.con.register("synth_chunk", body)
        try:
            self.con.execute(f"COPY synth_chunk TO {_sql_text(str(self._part))} ({self._options})")
        finally:
            self.con.unregister("synth_chunk")
        with open(self._part, "rb") as part:
            shutil.copyfileobj(part, self._out, 1 << 20)
        self._part.unlink()
        self.rows += body.num_rows

    def __enter__(self) -> CsvFileWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._out.close()
        self._part.unlink(missing_ok=True)
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)


def write_table(con: duckdb.DuckDBPyConnection, out_dir: Path, f: NcmFile, table: pa.Table, compress: bool) -> int:
    """Write a whole file from one table; returns its row count."""
    with CsvFileWriter(con, out_dir, f, compress) as writer:
        writer.write(table)
    return writer.rows
