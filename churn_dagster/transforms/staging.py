"""The typed, rule-checked rows of one source file, as one SQL query shared by every pass that reads it.

The fast parallel pass and the ordered re-scan for line numbers must see exactly the same rows, problems
and buckets; both build their query here. A row's bucket is its day (``YYYY-MM-DD``, or ``all`` for snapshot
files), ``q_<day>`` / ``q_unassigned`` when it breaks a rule, or ``outside`` when its day is not in the run.
"""

from __future__ import annotations

from pathlib import Path

from churn_dagster import ncm_format as fmt
from churn_dagster.transforms.csv_source import read_csv_sql
from churn_dagster.transforms.ingest_rules import DETAIL_ITEMS_TYPE, RULES

SNAPSHOT_BUCKET = "all"
OUTSIDE_BUCKET = "outside"
QUARANTINE_PREFIX = "q_"
UNASSIGNED_SCOPE = "unassigned"


def _bucket_sql(spec: fmt.NcmFile) -> str:
    if not spec.daily:
        return f"CASE WHEN _problem IS NULL THEN '{SNAPSHOT_BUCKET}' ELSE '{QUARANTINE_PREFIX}{SNAPSHOT_BUCKET}' END"
    day_key = "strftime($first_day + (dt - 1), '%Y-%m-%d')"
    return f"""CASE
        WHEN dt IS NULL OR NOT (dt BETWEEN 1 AND $num_days) THEN '{QUARANTINE_PREFIX}{UNASSIGNED_SCOPE}'
        WHEN NOT list_contains($run_dts, dt) THEN '{OUTSIDE_BUCKET}'
        WHEN _problem IS NULL THEN {day_key}
        ELSE '{QUARANTINE_PREFIX}' || {day_key}
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
