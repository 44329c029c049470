"""How the lines of a CSV source become staged records the exact way: one DuckDB statement per block that
splits each line into fields (quote-aware only where a line holds a quote) and judges its shape (UTF-8, a
carriage return inside, a blank line, badly quoted fields, the field count); and the byte-order mark a file
without a header may start with. The fast path for plain lines is :mod:`.fast_lines`."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from churn_dagster.stages.events.sql.times import sql_text
from churn_dagster.stages.ingest.sql.header import UTF8_BOM
from churn_dagster.stages.ingest.sql.lines import MAX_LINE_BYTES

# A character that cannot occur in a text field stands in for delimiters inside quoted stretches.
SHELTERED = "chr(30)"
LINE = "(line)"


def without_bom(block: pa.Table) -> pa.Table:
    """The first block of a file without a header, its first line without a UTF-8 byte-order mark (Windows
    tools write one; in a header it is dropped with the names, here it would become part of the first user)."""
    first = block.column("raw")[0].as_py()
    if not first.startswith(UTF8_BOM):
        return block
    raw = pa.concat_arrays([pa.array([first[len(UTF8_BOM):]], pa.large_binary()),
                            block.column("raw").slice(1).combine_chunks()])
    return block.set_column(block.schema.get_field_index("raw"), "raw", raw)


def csv_block_sql(names: Sequence[str], columns: dict[str, str], delimiter: str, table: str,
                   named_by: str, quoted: bool = True) -> str:
    """One statement that splits a block of lines (``_block``: line, raw, too_long) into fields and stages
    them: quote-aware only for lines that hold a quote (never, without ``quoted``)."""
    d = sql_text(delimiter)
    sheltered = (f"array_to_string(list_transform(string_split(_t, '\"'), lambda piece, i: CASE WHEN i % 2 = 0 "
                 f"THEN replace(piece, {d}, {SHELTERED}) ELSE piece END), '\"')")
    quoted_split = f"list_transform(string_split({sheltered}, {d}), lambda f: replace(f, {SHELTERED}, {d}))"
    well_quoted = ("list_bool_and(list_transform(_f, lambda f: NOT contains(f, '\"') OR (length(f) >= 2 AND "
                   "starts_with(f, '\"') AND ends_with(f, '\"') AND NOT contains(replace(f[2:-2], '\"\"', ''), '\"'))))")

    def field(column: str) -> str:
        raw = f"_f[{names.index(column) + 1}]"
        if not quoted:
            return raw
        return f"CASE WHEN starts_with({raw}, '\"') THEN replace({raw}[2:-2], '\"\"', '\"') ELSE {raw} END"

    has_quote = "contains(_t, '\"')" if quoted else "false"

    picked = ", ".join(field(c) if c else "NULL" for c in columns.values())
    n = len(names)
    return f"""
        INSERT INTO {table}
        WITH _decoded AS (SELECT line, too_long, TRY(decode(raw)) AS _text FROM _block),
        _trimmed AS (SELECT *, CASE WHEN ends_with(_text, chr(13)) THEN _text[:-2] ELSE _text END AS _t FROM _decoded),
        _split AS (SELECT *, CASE WHEN {has_quote} THEN {quoted_split} ELSE string_split(_t, {d}) END AS _f
                   FROM _trimmed)
        SELECT $file, line,
            CASE WHEN too_long THEN 'the line is longer than {MAX_LINE_BYTES} bytes'
                 WHEN _text IS NULL THEN 'the line is not valid UTF-8 (an ISO-8859-1 file needs source.encoding: latin-1)'
                 WHEN trim(_t) = '' THEN 'a blank line'
                 WHEN contains(_t, chr(13)) THEN 'a carriage return (CR) inside the line'
                 WHEN {has_quote} AND NOT {well_quoted}
                     THEN 'a field holds a quote but is not wholly quoted with its inner quotes doubled'
                 WHEN len(_f) <> {n} THEN {sql_text(f"expected {n} fields ({named_by}), found ")} || len(_f)
            END AS problem,
            '{LINE}', {picked}
        FROM _split"""
