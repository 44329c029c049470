"""The typed, rule-checked rows of one source file, as one SQL query shared by every pass that reads it.

The fast parallel pass and the ordered re-scan for line numbers must see exactly the same rows, problems
and buckets; both build their query here.
"""

from __future__ import annotations

from pathlib import Path

from churn_dagster import ncm_format as fmt
from churn_dagster.transforms.csv_source import read_csv_sql
from churn_dagster.transforms.ingest_rules import DETAIL_ITEMS_TYPE, RULES

# Buckets are integers (cheap to partition by): a day's rows go to bucket dt, quarantined rows of that day
# to QUARANTINE_OFFSET + dt, quarantined rows without a usable day to UNASSIGNED_BUCKET, rows of days the
# run does not write to OUTSIDE_BUCKET. Snapshot files use SNAPSHOT_BUCKET as their one "day".
OUTSIDE_BUCKET = -1
UNASSIGNED_BUCKET = 0
SNAPSHOT_BUCKET = 1
QUARANTINE_OFFSET = 1000
UNASSIGNED_SCOPE = "unassigned"
SNAPSHOT_SCOPE = "all"


def _bucket_sql(spec: fmt.NcmFile) -> str:
    if not spec.daily:
        return f"CASE WHEN _problem IS NULL THEN {SNAPSHOT_BUCKET} ELSE {QUARANTINE_OFFSET + SNAPSHOT_BUCKET} END"
    return f"""CASE
        WHEN dt IS NULL OR NOT (dt BETWEEN 1 AND $num_days) THEN {UNASSIGNED_BUCKET}
        WHEN NOT list_contains($run_dts, dt) THEN {OUTSIDE_BUCKET}
        WHEN _problem IS NULL THEN dt
        ELSE {QUARANTINE_OFFSET} + dt
    END"""


def staged_rows_sql(spec: fmt.NcmFile, path: Path, rejects: str | None) -> tuple[str, dict]:
    """Typed rows of one file with the derived columns, ``_problem`` and ``_bucket``."""
    rules = RULES[spec.stem]
    read = read_csv_sql(spec, path, rejects)
    derived = "".join(f", {expr} AS {name}" for name, expr in rules.derived)
    sql = f"""
        SELECT *, {_bucket_sql(spec)} AS _bucket FROM (
            SELECT *, {rules.problem_sql(spec)} AS _problem FROM (SELECT *{derived} FROM ({read.sql}))
        )"""
    return sql, read.params


def stored_columns(spec: fmt.NcmFile) -> list[str]:
    """Columns of the stored table: the file's canonical columns, with parsed ones replacing raw text."""
    rules = RULES[spec.stem]
    kept = [c.name for c in spec.columns if c.name not in rules.replaced]
    return kept + [name for name, _ in rules.derived]


def stored_type(spec: fmt.NcmFile, name: str) -> str:
    return DETAIL_ITEMS_TYPE if name == "detail_items" else spec.column(name).duck_type
