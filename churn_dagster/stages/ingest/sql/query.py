"""The one statement that turns a block of numbered lines of one source file into output rows.

It stacks the format layer (:mod:`fields`; or, for the canonical lines Arrow typed, :mod:`fast`), the
derived columns and the content rules (:mod:`rules`) and adds, per line: ``_rule`` (the index of the first
rule it breaks, NULL for a good row), ``_bucket`` (where it goes: a day's ``dt``, ``UNASSIGNED`` for a row
without a usable day, ``SNAPSHOT`` for the one partition of a snapshot file), the hash of its natural key for
the duplicate check, and for a rejected line its text. Whether a day is one the run writes is decided by the
caller once per slice of a block (``run._Run.take``), not per row here.
:func:`sort_block` then puts the rows good-first, then by bucket and line, so that each partition's rows are
one contiguous slice in file order (a sort of integer columns in NumPy, far cheaper than an ``ORDER BY`` that
drags every column along).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.stages.ingest.sql.fields import Rule, format_rules, typed_rows_sql
from churn_dagster.stages.ingest.sql.rules import (
    DELIVERED_DAY_RULE,
    RULES,
    stored_columns,
)

UNASSIGNED = 0
SNAPSHOT = 1
LINES_TABLE = "_ingest_lines"
FAST_TABLE = "_ingest_fast"


@dataclass(frozen=True)
class IngestQuery:
    sql: str
    rules: list[Rule]


def _bucket(spec: fmt.NcmFile, delivered: bool) -> str:
    if not spec.daily:
        return str(SNAPSHOT)
    if delivered:  # a day's delivery: everything it holds, good or not, belongs to that day
        return "$delivered_dt"
    usable = "coalesce(_structure_ok AND _ok_dt AND dt BETWEEN 1 AND $num_days, false)"
    return f"CASE WHEN {usable} THEN dt ELSE {UNASSIGNED} END"


def ingest_query(spec: fmt.NcmFile, file_order: list[fmt.Column], delivered: bool) -> IngestQuery:
    """The statement for one source file whose header lists ``file_order``; ``delivered`` marks a file of a
    ``day=`` folder, whose rows must all carry that folder's day (``$delivered_dt``)."""
    typed, rules = typed_rows_sql(spec, file_order, LINES_TABLE)
    return _query(spec, typed, rules, delivered, fast=False)


def fast_ingest_query(spec: fmt.NcmFile, file_order: list[fmt.Column], delivered: bool) -> IngestQuery:
    """The same checks over the typed canonical lines of ``FAST_TABLE`` (:mod:`fast`): the format layer's rules
    and the shape checks cannot fire on those lines and are skipped, the others keep their numbers, so a row's
    rule means the same reason on both paths. It returns only ``source_line``, ``_rule``, ``_bucket`` and
    ``_key_hash``, in any order: the stored columns, and the text of a line a content rule rejects, stay in the
    Arrow table they were typed in (:func:`attach`); handing DuckDB every line's text for the few it rejects
    cost a third of the statement."""
    typed = (f"SELECT line, true AS _structure_ok, true AS _ok_dt, "
             f"{', '.join(c.name for c in spec.columns)} FROM {FAST_TABLE}")
    return _query(spec, typed, format_rules(file_order), delivered, fast=True)


def attach(typed: pa.Table, checked: pa.Table, spec: fmt.NcmFile) -> pa.Table:
    """The rows of the fast path as the exact statement returns them: the stored columns of ``typed`` (in
    line order) beside the checks of ``checked`` (the fast statement's result, in any order), and for a
    rejected line its text, less the newline it was typed with."""
    checked = checked.take(np.argsort(checked["source_line"].to_numpy(), kind="stable"))
    stored = [c for c in stored_columns(spec) if c != "source_line"]
    rule = checked["_rule"]
    if rule.null_count == len(rule):  # no line broke a content rule: every block of a clean file
        content = pa.nulls(len(rule), pa.string())
    else:
        text = pc.utf8_slice_codeunits(typed["_line_text"], 0, -1).cast(pa.string())
        content = pc.if_else(pc.is_valid(rule), text, pa.scalar(None, pa.string()))
    return pa.table([checked["source_line"], *(typed[c] for c in stored),
                     *(checked[c] for c in ("_rule", "_bucket", "_key_hash")), content],
                    names=["source_line", *stored, "_rule", "_bucket", "_key_hash", "_content"])


def _query(spec: fmt.NcmFile, typed: str, formats: list[Rule], delivered: bool, fast: bool) -> IngestQuery:
    file_rules = RULES[spec.stem]
    rules = [*formats, *file_rules.rules(spec), *([DELIVERED_DAY_RULE] if delivered and spec.daily else [])]
    skipped = {id(r) for r in (*formats, *file_rules.shape_checks)} if fast else set()
    cases = " ".join(f"WHEN {r.condition} THEN {i}" for i, r in enumerate(rules) if id(r) not in skipped)
    rule_case = f"CASE {cases} END" if cases else "NULL::INTEGER"
    derived = "" if fast else "".join(f", {expr} AS {name}" for name, expr in file_rules.derived)
    stored_derived = "" if fast else "".join(f", {expr} AS {name}" for name, expr in file_rules.stored_derived)
    stored = "" if fast else "".join(f"{c}, " for c in stored_columns(spec) if c != "source_line")
    # A rejected line's text: on the fast path the line as read, less its newline (``lines``); on the exact
    # path the decoded line, or its bytes where they are not UTF-8.
    content = "" if fast else ",\n       CASE WHEN _rule IS NOT NULL THEN coalesce(_line_text, CAST(raw AS VARCHAR)) END AS _content"
    sql = f"""
SELECT line AS source_line, {stored}_rule, _bucket, hash({', '.join(file_rules.key)}) AS _key_hash{content}
FROM (
    SELECT *, {rule_case} AS _rule, {_bucket(spec, delivered)} AS _bucket
    FROM (SELECT *{stored_derived} FROM (SELECT *{derived} FROM ({typed})))
)"""
    return IngestQuery(sql, rules)


def sort_block(rows: pa.Table) -> pa.Table:
    """Good rows first, then by bucket, then by line. A block already in that order (all its rows good and of
    one day, as every block of a file delivered per day or sorted by day is) is returned as it is: taking it
    in its own order copied every column, swipe-down lists included, for nothing."""
    rejected = pc.is_valid(rows["_rule"]).to_numpy(zero_copy_only=False)
    line, bucket = rows["source_line"].to_numpy(), rows["_bucket"].to_numpy()
    if not rejected.any() and np.all(line[1:] > line[:-1]) and bucket.min(initial=0) >= np.iinfo(np.int16).min \
            and bucket.max(initial=0) <= np.iinfo(np.int16).max:
        # All good and in line order (a block of the fast path alone): a stable sort by bucket keeps line order,
        # and NumPy sorts 16-bit keys by radix, seven times faster than the three-key lexsort.
        order = np.argsort(bucket.astype(np.int16), kind="stable")
    else:
        order = np.lexsort((line, bucket, rejected))
    if bool(np.all(order[1:] > order[:-1])):  # the identity permutation
        return rows
    return rows.take(order)
