"""The header line of a published file: which column each field position holds.

Checked by hand before any row is read, so a renamed, missing or doubled column fails with the file,
line 1 and the column named, while the known typos of the real files (``userImprssionCount``,
``PushlishMlogCnt``) and their documented spellings are both accepted. Columns are matched by name, so a
reordered file loads; a UTF-8 byte-order mark before the first name is ignored.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.errors import UserError
from churn_dagster.transforms.ingest.lines import open_source, read_header

UTF8_BOM = b"\xef\xbb\xbf"


class BadInputError(UserError, ValueError):
    """A source file that cannot be read as published; the message names the file, line and column."""


def header_fields(path: Path) -> list[str]:
    """The names in the first line of ``path`` (CSV-unquoted)."""
    try:
        with open_source(path) as stream:
            line = read_header(stream)
    except (OSError, EOFError, ValueError) as exc:
        raise BadInputError(f"{path}, line 1: cannot be read ({exc})") from exc
    if line is None:
        raise BadInputError(f"{path}: the file is empty; expected a header line")
    try:
        text = line.removeprefix(UTF8_BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path}, line 1: the header is not UTF-8 ({exc.reason})") from exc
    return next(csv.reader(io.StringIO(text)), [])


def file_columns(spec: fmt.NcmFile, path: Path) -> list[fmt.Column]:
    """The spec's columns in the order the file's header lists them; fail on unknown or missing names."""
    header = header_fields(path)
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
