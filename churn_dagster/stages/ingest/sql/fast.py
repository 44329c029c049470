"""The fast path of the NCM ingest: lines already in their strictest published form typed by Arrow's CSV
reader instead of the SQL format layer.

The exact path (:mod:`fields`) reads every field as text and judges it in SQL: decoding, splitting (quote-aware
where a line holds a quote), a regular expression and a cast per field. Most lines of a clean file need none of
that. A line is *canonical* when one RE2 match over it says the format layer would find nothing wrong: exactly
the file's fields, none quoted, each the null token or of its column's strictest shape (integers of at most 9
or 18 digits, so they always fit their 32 or 64 bits; ``0``/``1`` flags; plain decimals; IDs of their grammar;
free text without a comma, quote, CR or byte-order mark), valid UTF-8, no CR, not cut for length. Canonical
lines are parsed by ``pyarrow.csv`` with the columns' types; the content rules, buckets and key hashes then run
in SQL over the typed rows (``query.fast_ingest_query``), the same expressions the exact path applies after its
format layer. Every other line goes the exact way, so the fast path changes no outcome, only the cost
(``assets_tests/test_ingest_fast_path.py`` compares the two byte for byte on random mixes of canonical and
hostile lines). A block whose Arrow record count differs from its canonical line count, or that Arrow refuses,
goes wholly the exact way.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.stages.ingest.sql import lines

_SHAPES = {
    "INTEGER": "0|-?[1-9][0-9]{0,8}",  # at most 999,999,999: always a 32-bit integer; no "-0"
    "BIGINT": "0|-?[1-9][0-9]{0,17}",
    "BOOLEAN": "[01]",
    "DOUBLE": "-?[0-9]{1,15}(?:\\.[0-9]{1,20})?(?:[eE][-+]?[0-9]{1,2})?",  # finite; read alike by Arrow and DuckDB
    "VARCHAR": '[^,"\\r\\x{FEFF}]*',
}
ARROW_TYPES = {"INTEGER": pa.int32(), "BIGINT": pa.int64(), "BOOLEAN": pa.bool_(), "DOUBLE": pa.float64(),
               "VARCHAR": pa.string()}
# The swipe-down list exactly as published: an unquoted empty list, or quoted entries of the nine keys in the
# published order, every value in its strictest form (what the exact path's shape checks, ``rules._DETAIL_RULES``,
# accept, and narrower).
# A swipe-down entry's view time must lie in [0, MAX_VIEW_TIME_S] (a shape check of the exact path): unsigned, at
# most four integer digits and no exponent is a strictly narrower shape.
_ENTRY_VIEW_TIME = "[0-9]{1,4}(?:\\.[0-9]{1,20})?"
assert 10 ** 4 <= fmt.MAX_VIEW_TIME_S
_ENTRY_VALUES = {"isZan": "[01]", "isComment": "[01]", "mlogId": fmt.ID_GRAMMAR.pattern,
                 "isIntoPersonalHomepage": "[01]", "mlogViewTime": _ENTRY_VIEW_TIME, "isShare": "[01]",
                 "isViewComment": "[01]", "position": _SHAPES["INTEGER"], "logtime": _SHAPES["BIGINT"]}
assert tuple(_ENTRY_VALUES) == fmt.DETAIL_LIST_KEYS
_ENTRY = ", ".join(f"'{k}': '(?:{v})'" for k, v in _ENTRY_VALUES.items())
DETAIL_LIST_SHAPE = f'\\[\\]|"\\[\\{{{_ENTRY}\\}}(?:, \\{{{_ENTRY}\\}})*\\]"'


def canonical_pattern(spec: fmt.NcmFile, file_order: list[fmt.Column]) -> str:
    """An RE2 pattern matching exactly the canonical lines of a file whose header lists ``file_order``."""
    nulls = [t for t in spec.null_spellings if '"' not in t]

    def field(column: fmt.Column) -> str:
        grammar = column.grammar.pattern if column.grammar is not None and not column.grammar.admits_comma else None
        shape = (STRUCTURED[column.name][0] if column.name in STRUCTURED else
                 f"(?:{grammar})" if grammar else _SHAPES[column.duck_type])
        return "(?:" + "|".join([*nulls, shape]) + ")"

    # Groups made non-capturing: nothing is extracted, and RE2 matches about a sixth faster without them.
    return re.sub(r"\((?!\?)", "(?:", "^" + ",".join(field(c) for c in file_order) + "$")


class FastLines:
    """The canonical lines of a block, typed: what the fast query reads (canonical column names, ``line``
    and ``_line_text``), and the rest of the block for the exact path."""

    def __init__(self, spec: fmt.NcmFile, file_order: list[fmt.Column]):
        self.pattern = canonical_pattern(spec, file_order)
        self.names = [c.name for c in file_order]
        self.types = {c.name: ARROW_TYPES[c.duck_type] for c in file_order}
        self.nulls = [t for t in spec.null_spellings if '"' not in t]

    def split(self, block: pa.Table) -> tuple[pa.Table | None, pa.Table]:
        """(typed canonical rows or None, the lines left for the exact path)."""
        return lines.split_canonical(block, self.pattern, self._typed)

    def _typed(self, text: pa.Array) -> pa.Table | None:
        parsed = lines.read_csv_lines(
            text, self.names,
            pa_csv.ParseOptions(delimiter=",", quote_char='"', double_quote=False, escape_char=False,
                                newlines_in_values=False, ignore_empty_lines=False),
            pa_csv.ConvertOptions(column_types=self.types, null_values=self.nulls, strings_can_be_null=True,
                                  quoted_strings_can_be_null=False, true_values=["1"], false_values=["0"]))
        if parsed is None or parsed.num_rows != len(text):
            return None
        for name, (_, stored, build) in STRUCTURED.items():
            if name in self.names:
                parsed = parsed.append_column(stored, build(parsed.column(name)))
        return parsed.append_column("_line_text", text)


def detail_items(lists: pa.ChunkedArray) -> pa.Array:
    """The stored ``detail_items`` of published swipe-down lists (NULL for none), as the exact path's
    ``rules.DETAIL_ITEMS_SQL`` builds them: each entry's card, position, view time, log time and flags.

    The canonical pattern admitted only lists in the published form, so an entry is cut at its ``', '``
    separators into its nine values in the published key order, each after a key prefix of known length."""
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    present = pc.is_valid(lists)
    given = lists.filter(present)  # most rows have no list: only the others are cut
    entries = pc.split_pattern(pc.utf8_slice_codeunits(given, 2, -2), "}, {")
    entries = pc.if_else(pc.equal(given, "[]"), pa.scalar([], entries.type), entries)  # the published empty list
    lengths = np.zeros(len(lists), np.int32)
    lengths[np.flatnonzero(present.to_numpy(zero_copy_only=False))] = pc.list_value_length(entries).to_numpy()
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths, dtype=np.int32)]).astype(np.int32))
    values = pc.split_pattern(pc.list_flatten(entries), "', '")
    column = {}
    for j, key in enumerate(_ENTRY_VALUES):
        prefix = len(f"'{key}': '") if j == 0 else len(f"{key}': '")
        stop = -1 if j == len(_ENTRY_VALUES) - 1 else None  # the last value's closing quote
        column[key] = pc.utf8_slice_codeunits(pc.list_element(values, j), prefix, stop)
    items = pa.StructArray.from_arrays(
        [column["mlogId"], column["position"].cast(pa.int32()), column["mlogViewTime"].cast(pa.float64()),
         column["logtime"].cast(pa.int64()),
         *(pc.equal(column[k], "1") for k in ("isZan", "isComment", "isIntoPersonalHomepage", "isShare",
                                               "isViewComment"))],
        names=["mlog_id", "position", "view_time", "logtime_ms", "is_like", "is_comment", "is_into_homepage",
               "is_share", "is_view_comment"])
    return pa.ListArray.from_arrays(offsets, items, mask=pc.invert(present))


# Column -> (its shape on the fast path, the stored column built from it, the builder of that column).
STRUCTURED = {"detail_list": (DETAIL_LIST_SHAPE, "detail_items", detail_items)}
