"""From numbered physical lines to typed fields, as SQL: splitting, quoting, null tokens and strict types.

DuckDB's CSV reader coerces what it should reject (``2.5`` into the integer 3, ``1e1`` into 10, ``0x1F``,
``1_0``, ``T`` or ``yes`` into numbers and booleans, ``nan`` into a double), skips blank lines and has no
line numbers for the rows it accepts. So every field is read as text here and judged by the file format
alone:

- a line is split on commas; a line holding a double quote is split outside quoted fields only, and every
  field of it must be either unquoted (no ``"`` inside) or fully quoted with inner quotes doubled;
- a field equal to the file's null token is NULL (``NA`` in the impression file, an empty field or ``""``
  in the others); an empty identifier is NULL too, so it is missing rather than the ID ``''``;
- an integer must be written exactly as its canonical base-10 form (digits, an optional minus, no leading
  zeros, and it must fit its 32 or 64 bits); a flag must be ``0`` or ``1``; a float must be a finite
  decimal number; an ID (and the card's category path) must match its column's grammar
  (:class:`churn_dagster.domain.ncm_format.Grammar`), so that ``U1``, an ID with a space, a tab, a
  zero-width or look-alike character, or 10,000 characters is never loaded as a new user or card.

Each problem is a :class:`Rule`: a SQL condition, the reason stored in the quarantine file and the source
column it is about (``(line)`` for problems of the whole line). The rules here come first, in this order;
the content rules of :mod:`churn_dagster.stages.ingest.sql.rules` follow them.
"""

from __future__ import annotations

from dataclasses import dataclass

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.stages.ingest.sql.lines import CR_INSIDE, MAX_LINE_BYTES

LINE_COLUMN = "(line)"
DECIMAL_PATTERN = r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?"
# A character that cannot occur in an NCM file stands in for commas inside quoted fields while splitting.
_SHELTERED_COMMA = "chr(30)"


@dataclass(frozen=True)
class Rule:
    """``condition`` is true for a row that breaks the rule."""

    condition: str
    reason: str
    column: str


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _quote_aware_split(text: str) -> str:
    """Fields of a line that holds quotes: commas inside quoted stretches (the even pieces between double
    quotes) are sheltered, the line is split on the remaining commas, and the commas restored."""
    sheltered = (
        f"array_to_string(list_transform(string_split({text}, '\"'), lambda piece, i: "
        f"CASE WHEN i % 2 = 0 THEN replace(piece, ',', {_SHELTERED_COMMA}) ELSE piece END), '\"')"
    )
    return f"list_transform(string_split({sheltered}, ','), lambda f: replace(f, {_SHELTERED_COMMA}, ','))"


# A field with a quote must be wholly quoted, its inner quotes doubled.
_FIELD_QUOTED_WELL = (
    "NOT contains(f, '\"') OR (length(f) >= 2 AND starts_with(f, '\"') AND ends_with(f, '\"') "
    "AND NOT contains(replace(f[2:-2], '\"\"', ''), '\"'))"
)


def _value(spec: fmt.NcmFile, column: fmt.Column, position: int) -> str:
    raw = f"_fields[{position}]"
    nulls = ", ".join(_sql_text(t) for t in spec.null_spellings)
    value = (
        f"CASE WHEN {raw} IN ({nulls}) THEN NULL "
        f"WHEN _has_quote AND starts_with({raw}, '\"') THEN replace({raw}[2:-2], '\"\"', '\"') ELSE {raw} END"
    )
    return f"nullif({value}, '')" if column.identifier else value


def _grammar_is_fast(column: fmt.Column) -> bool:
    """Whether the fast pattern checks the column's grammar itself: not for a grammar with commas (the
    category path), which only a quoted field can hold and a quoted line never takes the fast path."""
    return column.grammar is not None and not column.grammar.admits_comma


def _typed(column: fmt.Column) -> tuple[str, str | None, str | None]:
    """(typed value, condition that the text is acceptable, reason when it is not) of ``_v_<name>``.

    A line that matched the file's fast pattern (:func:`_fast_pattern`) already has every field in its
    strict form, so only what a pattern cannot say is checked there: that an integer fits its bits and a
    float is finite."""
    text = f"_v_{column.name}"
    if column.duck_type in ("INTEGER", "BIGINT"):
        bits = 32 if column.duck_type == "INTEGER" else 64
        typed = f"TRY_CAST({text} AS {column.duck_type})"
        ok = (f"CASE WHEN _fast THEN {text} IS NULL OR {typed} IS NOT NULL "
              f"ELSE {text} IS NULL OR coalesce(CAST({typed} AS VARCHAR) = {text}, false) END")
        return typed, ok, f"{column.source} is not a plain base-10 integer of {bits} bits"
    if column.duck_type == "BOOLEAN":
        ok = f"CASE WHEN _fast THEN true ELSE {text} IS NULL OR {text} IN ('0', '1') END"
        return f"{text} = '1'", ok, f"{column.source} is not 0 or 1"
    if column.duck_type == "DOUBLE":
        typed = f"TRY_CAST({text} AS DOUBLE)"
        ok = (f"{text} IS NULL OR CASE WHEN _fast THEN isfinite({typed}) "
              f"ELSE coalesce(regexp_full_match({text}, '{DECIMAL_PATTERN}') AND isfinite({typed}), false) END")
        return typed, ok, f"{column.source} is not a finite decimal number"
    if column.grammar is not None:
        matches = f"regexp_full_match({text}, '{_sql_pattern(column.grammar.pattern)}')"
        ok = f"{text} IS NULL OR " + (f"_fast OR {matches}" if _grammar_is_fast(column) else matches)
        return text, ok, f"{column.source} is not {column.grammar.described}"
    return text, None, None


def _sql_pattern(pattern: str) -> str:
    return f"(?:{pattern})".replace("'", "''")


_STRICT_PATTERNS = {
    "INTEGER": "0|-?[1-9][0-9]*",  # canonical: no "-0", which the exact path quarantines too
    "BIGINT": "0|-?[1-9][0-9]*",
    "BOOLEAN": "[01]",
    "DOUBLE": DECIMAL_PATTERN,
    "VARCHAR": '[^,"]*',
}


def _fast_pattern(spec: fmt.NcmFile, file_order: list[fmt.Column]) -> str:
    """A regular expression that a line without quotes matches exactly when each of its fields is the null
    token or strictly of its column's type. One pass of RE2 over the line replaces a dozen per-field checks
    for the lines that pass (all of a clean file); the others go through the per-field checks to find out
    which field is wrong."""
    def field(column: fmt.Column) -> str:
        nulls = [t for t in spec.null_spellings if '"' not in t]
        value = f"(?:{column.grammar.pattern})" if _grammar_is_fast(column) else _STRICT_PATTERNS[column.duck_type]
        return "(" + "|".join([*nulls, value]) + ")"

    return ",".join(field(c) for c in file_order).replace("'", "''")


# A CR before the line's own terminator: lines ending with CR alone inside an LF or CRLF file, run together.
_INNER_CR = "contains(_line_text, chr(13))"
# A byte-order mark opening a data line: files concatenated with their BOMs.
_LINE_BOM = "starts_with(_line_text, chr(65279))"


def structural_rules(n_fields: int) -> list[Rule]:
    return [
        Rule("_too_long", f"line longer than {MAX_LINE_BYTES // (1 << 20)} MiB", LINE_COLUMN),
        Rule("_text IS NULL", "the line is not valid UTF-8", LINE_COLUMN),
        Rule("_line_text = ''", "blank line", LINE_COLUMN),
        Rule(_INNER_CR, f"{CR_INSIDE}: lines ending with CR alone run into the next (CR mixed with LF or CRLF)",
             LINE_COLUMN),
        Rule(_LINE_BOM, "a byte-order mark (BOM) opens the line (a file appended with its own BOM)", LINE_COLUMN),
        Rule(f"_n_fields <> {n_fields}", f"wrong number of fields (expected {n_fields})", LINE_COLUMN),
        Rule("_bad_quoting", "malformed quoting", LINE_COLUMN),
    ]


STRUCTURE_OK = (f"NOT (_too_long OR _text IS NULL OR _line_text = '' OR {_INNER_CR} OR {_LINE_BOM} "
                "OR _n_fields <> {n} OR _bad_quoting)")


def typed_rows_sql(spec: fmt.NcmFile, file_order: list[fmt.Column], lines_table: str) -> tuple[str, list[Rule]]:
    """SQL over ``lines_table`` (``line``, ``raw``, ``too_long``) giving, per line: ``line``, ``raw``,
    ``_line_text``, ``_structure_ok``, every column of ``spec`` typed under its canonical name, and
    ``_ok_<name>`` per typed column; with the format rules in the order they apply.

    ``file_order`` is the header's column order (see :func:`header.file_columns`).
    """
    n = len(file_order)
    values = ",\n        ".join(f"{_value(spec, c, i + 1)} AS _v_{c.name}" for i, c in enumerate(file_order))
    typed_parts = {c.name: _typed(c) for c in spec.columns}
    typed = ",\n        ".join(
        f"{expr} AS {name}" + (f", {ok} AS _ok_{name}" if ok else "") for name, (expr, ok, _) in typed_parts.items()
    )
    sql = f"""
WITH _decoded AS (
    SELECT line, raw, too_long AS _too_long, TRY(decode(raw)) AS _text FROM {lines_table}
), _trimmed AS (
    SELECT *, CASE WHEN ends_with(_text, chr(13)) THEN _text[:-2] ELSE _text END AS _line_text FROM _decoded
), _split AS (
    SELECT *, contains(_line_text, '"') AS _has_quote,
           NOT contains(_line_text, '"') AND regexp_full_match(_line_text, '{_fast_pattern(spec, file_order)}') AS _fast,
           CASE WHEN contains(_line_text, '"') THEN {_quote_aware_split('_line_text')}
                ELSE string_split(_line_text, ',') END AS _fields
    FROM _trimmed
), _fielded AS (
    SELECT line, raw, _too_long, _text, _line_text, _has_quote, _fast, len(_fields) AS _n_fields,
        CASE WHEN _has_quote THEN NOT (
            coalesce(list_bool_and(list_transform(_fields, lambda f: {_FIELD_QUOTED_WELL})), true)
            AND NOT contains(_line_text, {_SHELTERED_COMMA})) ELSE false END AS _bad_quoting,
        {values}
    FROM _split
)
SELECT line, raw, _line_text, {STRUCTURE_OK.format(n=n)} AS _structure_ok, _too_long, _text, _n_fields, _bad_quoting,
        {typed}
FROM _fielded"""
    return sql, format_rules(file_order)


def format_rules(file_order: list[fmt.Column]) -> list[Rule]:
    """The format layer's rules of a file whose header lists ``file_order``, in the order they apply: the
    line's structure, then each typed column's."""
    rules = structural_rules(len(file_order))
    for column in file_order:
        _, ok, reason = _typed(column)
        if ok is not None:
            rules.append(Rule(f"NOT _ok_{column.name}", reason, column.source))
    return rules
