"""The header line of a published file: which column each field position holds.

Checked by hand before any row is read, so a renamed, missing or doubled column fails with the file,
line 1 and the column named, while the known typos of the real files (``userImprssionCount``,
``PushlishMlogCnt``) and their documented spellings are both accepted. Columns are matched by name, so a
reordered file loads; a UTF-8 byte-order mark before the first name is ignored.

A file that cannot be read at all fails with one line naming it and what to do: a folder, a file without
read permission, a symbolic link that loops or leads nowhere, a ``.gz`` that is not gzip or is cut short, a
gzip file named ``.csv``, a UTF-16 file, a zip, bzip2, xz, zstd, Parquet or Excel file handed over as CSV, lines
ending with CR alone (:func:`unreadable`, :func:`header_fields`).
"""

from __future__ import annotations

import csv
import errno
import gzip
import io
import os
import zlib
from pathlib import Path

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.errors import UserError
from churn_dagster.stages.ingest.sql.lines import BARE_CR_LINES, MAX_LINE_BYTES, open_source, read_header

UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
GZIP_MAGIC = b"\x1f\x8b"
# The first bytes of files that are not CSV text but are often handed over as one; each has its own fix.
NOT_TEXT = (
    (b"PK\x03\x04", "a zip archive (or an Excel .xlsx workbook); extract or export the CSV file"),
    (b"BZh", "bzip2-compressed; decompress it (only gzip is read)"),
    (b"\xfd7zXZ\x00", "xz-compressed; decompress it (only gzip is read)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed; decompress it (only gzip is read)"),
    (b"PAR1", "a Parquet file; export it as CSV"),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls workbook; export it as CSV"),
)
# How many unknown header names a message shows, and how much of each.
SHOWN_NAMES, SHOWN_NAME_CHARS = 5, 40


class BadInputError(UserError, ValueError):
    """A source file that cannot be read as published; the message names the file, line and column."""


def unreadable(path: Path, exc: BaseException, after_line: int | None = None) -> BadInputError:
    """One line saying why ``path`` cannot be read; ``after_line``: the last line read before the failure."""
    where = f"{path}, after line {after_line}" if after_line is not None else str(path)
    if isinstance(exc, IsADirectoryError):
        why = "is a folder, not a file"
    elif isinstance(exc, PermissionError):
        why = "cannot be read: permission denied (give the pipeline's user read access)"
    elif isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        why = f"is a symbolic link that loops back on itself (it points to {os.readlink(path)})"
    elif isinstance(exc, FileNotFoundError) and path.is_symlink():
        why = f"is a symbolic link to {os.readlink(path)}, which does not exist"
    elif isinstance(exc, gzip.BadGzipFile) and after_line is None:
        why = "is not gzip-compressed, though its name ends in .gz (rename it to .csv, or compress it)"
    elif isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)):
        why = f"the gzip data ends early or is damaged ({exc}); the file was cut short or corrupted, deliver it again"
    elif isinstance(exc, ValueError):
        where, why = f"{path}, line 1", str(exc)
    else:
        why = f"cannot be read ({exc})"
    return BadInputError(f"{where}: {why}")


def header_fields(path: Path, delimiter: str = ",", encoding: str = "utf-8", quoted: bool = True) -> list[str]:
    """The names in the first line of ``path`` (CSV-unquoted unless not ``quoted``, fields separated by
    ``delimiter``, which may be several characters: MovieLens writes ``::``), read in ``encoding`` (utf-8 or
    latin-1)."""
    try:
        with open_source(path) as stream:
            line = read_header(stream)
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise unreadable(path, exc) from exc
    if line is None:
        raise BadInputError(f"{path}: the file is empty; expected a header line")
    if line.startswith(GZIP_MAGIC):
        fix = "it is compressed twice; decompress it once" if path.suffix == ".gz" else f"name it {path.name}.gz"
        raise BadInputError(f"{path}, line 1: the file is gzip-compressed; {fix}")
    if line.startswith(UTF16_BOMS):
        raise BadInputError(f"{path}, line 1: the file is UTF-16 (it starts with a UTF-16 byte-order mark); "
                            "expected UTF-8")
    for magic, what in NOT_TEXT:
        if line.startswith(magic):
            raise BadInputError(f"{path}, line 1: the file is {what}")
    if b"\r" in line:
        raise BadInputError(f"{path}, line 1: {BARE_CR_LINES}")
    if len(line) > MAX_LINE_BYTES:
        raise BadInputError(f"{path}, line 1: the header line is longer than {MAX_LINE_BYTES} bytes; "
                            "expected the column names")
    try:
        text = line.removeprefix(UTF8_BOM).decode(encoding)
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path}, line 1: the header is not UTF-8 ({exc.reason})") from exc
    if not text.strip():
        raise BadInputError(f"{path}, line 1: the header line is blank; expected the column names")
    if not quoted:
        return text.split(delimiter)
    if len(delimiter) > 1:  # the csv module takes one character; such files are not quoted in practice
        return [f[1:-1].replace('""', '"') if len(f) >= 2 and f[0] == f[-1] == '"' else f
                for f in text.split(delimiter)]
    try:
        return next(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise BadInputError(f"{path}, line 1: the header is not a line of {delimiter!r}-separated names ({exc})") from exc


def _names(names: list[str]) -> str:
    shown = [repr(n if len(n) <= SHOWN_NAME_CHARS else n[: SHOWN_NAME_CHARS - 1] + "…") for n in names[:SHOWN_NAMES]]
    return ", ".join(shown) + (f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else "")


def _is_header_of(spec: fmt.NcmFile, header: list[str]) -> bool:
    by_spelling = {name: col for col in spec.columns for name in (col.source, *col.aliases)}
    return all(h in by_spelling for h in header) and {by_spelling[h] for h in header} == set(spec.columns)


def file_columns(spec: fmt.NcmFile, path: Path) -> list[fmt.Column]:
    """The spec's columns in the order the file's header lists them; fail on unknown or missing names."""
    header = header_fields(path)
    by_spelling = {name: col for col in spec.columns for name in (col.source, *col.aliases)}
    unknown = [h for h in header if h not in by_spelling]
    expected = ", ".join(spec.header)
    other = next((f.stem for f in fmt.ALL_FILES if f is not spec and _is_header_of(f, header)), None)
    if other is not None:
        raise BadInputError(f"{path}, line 1: the header of {other}.csv, not of {spec.stem}.csv; is the file misnamed?")
    if unknown and len(unknown) == len(header):
        raise BadInputError(f"{path}, line 1: not the header of {spec.stem}.csv (no known column among "
                            f"{_names(unknown)}); expected the columns {expected}")
    if unknown:
        raise BadInputError(f"{path}, line 1: unknown column(s) {_names(unknown)}; expected the columns {expected}")
    columns = [by_spelling[h] for h in header]
    missing = [c.source for c in spec.columns if c not in columns]
    if missing:
        raise BadInputError(f"{path}, line 1: missing column(s) {', '.join(map(repr, missing))}")
    if len(set(columns)) != len(columns):
        raise BadInputError(f"{path}, line 1: a column appears twice in the header {header}")
    return columns
