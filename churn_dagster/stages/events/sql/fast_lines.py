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
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from churn_dagster.stages.ingest.sql.lines import MAX_LINE_BYTES, joined_lines

# A piece of a block this short that holds bytes that are not UTF-8 goes wholly the exact way.
MIN_PIECE = 32


def usable(delimiter: str, quoted: bool) -> bool:
    """Whether the fast path serves a source with this delimiter and quoting."""
    return len(delimiter) == 1 and quoted


def canonical_pattern(n_fields: int, delimiter: str) -> str:
    """An RE2 pattern matching exactly the lines of ``n_fields`` canonical fields."""
    d = re.escape(delimiter)
    field = f'(?:"(?:[^"\\r]|"")*"|[^"{d}\\r]*)'
    return f"^{field}(?:{d}{field}){{{n_fields - 1}}}\\r?$"


def split_canonical(block: pa.Table, names: list[str], delimiter: str) -> tuple[pa.Table, pa.Table]:
    """``block`` (``line``, ``raw``, ``too_long``) as (fields of its canonical lines, with their ``line``;
    the rest of the block for the exact path). Arrow checks UTF-8 a whole array at a time, so a block with
    bytes that are not UTF-8 is halved until the pieces that hold them are at most ``MIN_PIECE`` lines;
    those go the exact way, which names the line."""
    try:
        text = block.column("raw").cast(pa.large_string())
    except pa.ArrowInvalid:
        if block.num_rows <= MIN_PIECE:
            return _empty(names), block
        half = block.num_rows // 2
        pieces = [split_canonical(block.slice(0, half), names, delimiter),
                  split_canonical(block.slice(half), names, delimiter)]
        return (pa.concat_tables([pieces[0][0], pieces[1][0]]), pa.concat_tables([pieces[0][1], pieces[1][1]]))
    fast = pc.and_(pc.invert(block.column("too_long")),
                   pc.match_substring_regex(text, canonical_pattern(len(names), delimiter)))
    if not pc.any(fast).as_py():
        return _empty(names), block
    try:
        parsed = pa_csv.read_csv(
            pa.BufferReader(joined_lines(text.filter(fast))),
            # Arrow parses in blocks and refuses a line longer than one: the lines admitted here are at most
            # MAX_LINE_BYTES (longer ones are cut and go the exact way), so a block of twice that holds any.
            read_options=pa_csv.ReadOptions(column_names=names, use_threads=False, block_size=2 * MAX_LINE_BYTES),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, quote_char='"', double_quote=True,
                                              escape_char=False, newlines_in_values=False, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(column_types={n: pa.large_string() for n in names},
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False,
                                                  null_values=[]))
    except pa.ArrowInvalid:  # never expected after the pattern; the exact path then judges the whole block
        return _empty(names), block
    lines = block.column("line").filter(fast)
    if parsed.num_rows != len(lines):  # never expected: the pattern admits one record per line
        return _empty(names), block
    return parsed.append_column("line", lines), block.filter(pc.invert(fast))


def _empty(names: list[str]) -> pa.Table:
    return pa.table({**{n: pa.array([], pa.large_string()) for n in names}, "line": pa.array([], pa.int64())})
