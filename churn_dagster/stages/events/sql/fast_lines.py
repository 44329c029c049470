"""The fast path of CSV staging: lines of the plainest shape split by Arrow's CSV reader instead of SQL.

Staging splits every line in SQL (``csv_split.csv_block_sql``), quote-aware wherever a line holds a quote,
and judges its shape there (UTF-8, a carriage return inside, a blank line, badly quoted fields, the field
count). That is exact and costly: most of a log's lines are plain. A line is *canonical* when one RE2 match
says the SQL path would find nothing wrong with it: exactly ``n`` fields, each either free of quotes,
delimiters and carriage returns, or wholly quoted with its inner quotes doubled, then at most one CR before
the newline. Canonical lines are split by ``pyarrow.csv`` (every column as text, nothing read as NULL),
which unquotes them exactly as the SQL path does; every other line goes the exact way, so the fast path
changes no outcome, only the cost (``assets_tests/test_event_fast_lines.py`` compares the two on random
mixes of plain and hostile lines). Delimiters of one character only: Arrow's reader takes no other.
"""

from __future__ import annotations

import re

import pyarrow as pa
from pyarrow.csv import ConvertOptions, ParseOptions

from churn_dagster.stages.ingest.sql import lines


def usable(delimiter: str, quoted: bool) -> bool:
    """Whether the fast path serves a source with this delimiter and quoting."""
    return len(delimiter) == 1 and quoted


def canonical_pattern(n_fields: int, delimiter: str) -> str:
    """An RE2 pattern matching exactly the lines of ``n_fields`` canonical fields."""
    d = re.escape(delimiter)
    field = f'(?:"(?:[^"\\r]|"")*"|[^"{d}\\r]*)'
    return f"^{field}(?:{d}{field}){{{n_fields - 1}}}\\r?$"


def split_canonical(block: pa.Table, names: list[str], delimiter: str) -> tuple[pa.Table, pa.Table]:
    """``block`` (``line``, ``raw``, ``too_long``) as (fields of its canonical lines, as text, with their
    ``line``; the rest of the block for the exact path): :func:`lines.split_canonical` with this pattern."""
    parse = ParseOptions(delimiter=delimiter, quote_char='"', double_quote=True, escape_char=False,
                         newlines_in_values=False, ignore_empty_lines=False)
    convert = ConvertOptions(column_types={n: pa.large_string() for n in names}, strings_can_be_null=False,
                             quoted_strings_can_be_null=False, null_values=[])
    parsed, rest = lines.split_canonical(block, canonical_pattern(len(names), delimiter),
                                         lambda text: lines.read_csv_lines(text, names, parse, convert))
    return (_empty(names) if parsed is None else parsed), rest


def _empty(names: list[str]) -> pa.Table:
    return pa.table({**{n: pa.array([], pa.large_string()) for n in names}, "line": pa.array([], pa.int64())})
