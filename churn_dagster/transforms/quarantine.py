"""Quarantine files: every row an ingest did not load, with its source file, line, column and reason.

Lines DuckDB could not parse come with their line number from its rejects table. Rows that parsed but broke
a rule, and duplicate or conflicting rows, are found by the fast parallel pass, which does not track line
numbers; for them an ordered single-threaded re-scan of that file runs, only when there is something to
report, and numbers its rows. A data row's line number is its ordinal plus the header plus the rejected
lines before it (blank lines, which carry no data, are skipped by the reader and not counted).
Everything here is SQL, so a file with millions of bad rows is handled like a clean one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import duckdb

from churn_dagster import ncm_format as fmt
from churn_dagster.transforms.duck import copy_to_parquet, used_params
from churn_dagster.transforms.ingest_rules import RULES
from churn_dagster.transforms.lake import Lake
from churn_dagster.transforms.staging import (
    QUARANTINE_OFFSET,
    SNAPSHOT_SCOPE,
    UNASSIGNED_BUCKET,
    UNASSIGNED_SCOPE,
    staged_rows_sql,
    stored_columns,
    stored_type,
)

DUPLICATE_REASON = "duplicate of an identical row, which was loaded once"
CONFLICT_REASON = "rows share the natural key but disagree on other columns; none was loaded"


def collect_rejects(con: duckdb.DuckDBPyConnection, tables: list[str], sources: list[Path]) -> int:
    """Gather DuckDB's rejects into ``_rejected``, one row per unparseable line; return the line count."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _rejected (source_file VARCHAR, line BIGINT, column_name VARCHAR, "
        "kind VARCHAR, reason VARCHAR, content VARCHAR)"
    )
    for table, source in zip(tables, sources, strict=True):
        con.execute(
            f"""INSERT INTO _rejected
                SELECT $source, line, arg_min(column_name, column_idx),
                       'unparseable line (' || string_agg(DISTINCT error_type, ', ' ORDER BY error_type) || ')',
                       arg_min(error_type || ': ' || error_message, column_idx), any_value(csv_line)
                FROM {table} GROUP BY line""",
            {"source": str(source)},
        )
    return con.execute("SELECT count(*) FROM _rejected").fetchone()[0]


def _rescan(con: duckdb.DuckDBPyConnection, spec: fmt.NcmFile, source: Path, params: dict) -> None:
    """Ordered re-read of one file into ``_scanned``: line numbers of flagged rows and suspect-key rows."""
    key = RULES[spec.stem].key
    sql, read_params = staged_rows_sql(spec, source, rejects="_rescan_rejects")
    row = "struct_pack(" + ", ".join(f"{c} := {c}" for c in stored_columns(spec)) + ")"
    match_key = " AND ".join(f"s.{k} = x.r.{k}" for k in key)
    threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
    con.execute("SET threads = 1")
    con.execute("SET preserve_insertion_order = true")
    try:
        con.execute(
            f"""INSERT INTO _scanned
                SELECT $source, rn, _problem, sc.scope, x._bucket >= {QUARANTINE_OFFSET} OR x._bucket = {UNASSIGNED_BUCKET}, r
                FROM (
                    SELECT row_number() OVER () AS rn, _problem, _bucket, {row} AS r FROM ({sql})
                ) x
                JOIN _scopes sc
                  ON sc.bucket = CASE WHEN x._bucket >= {QUARANTINE_OFFSET} THEN x._bucket - {QUARANTINE_OFFSET}
                                      ELSE x._bucket END
                WHERE x._bucket >= {QUARANTINE_OFFSET} OR x._bucket = {UNASSIGNED_BUCKET}
                   OR EXISTS (SELECT 1 FROM _suspects s WHERE s.scope = sc.scope AND {match_key})""",
            {**read_params, **used_params(sql, params), "source": str(source)},
        )
    finally:
        con.execute(f"SET threads = {threads}")
        con.execute("SET preserve_insertion_order = false")
        con.execute("DROP TABLE IF EXISTS _rescan_rejects")
        con.execute("DROP TABLE IF EXISTS _rescan_rejects_scan")


# The i-th rejected line r_i of a file has r_i - i - 1 parsed rows before it, so a parsed row with ordinal n
# sits after every rejected line whose count of preceding parsed rows is below n.
_LINES_SQL = """
CREATE OR REPLACE TEMP TABLE _numbered AS
WITH ranked AS (
    SELECT source_file, line - row_number() OVER (PARTITION BY source_file ORDER BY line) - 1 AS parsed_before,
           row_number() OVER (PARTITION BY source_file ORDER BY line) AS rejected_so_far
    FROM _rejected
), steps AS (
    SELECT source_file, parsed_before, max(rejected_so_far) AS rejected_so_far FROM ranked GROUP BY ALL
)
SELECT s.*, s.rn + 1 + coalesce(k.rejected_so_far, 0) AS line
FROM _scanned s ASOF LEFT JOIN steps k ON s.source_file = k.source_file AND s.rn > k.parsed_before
"""


def _quarantine_rows_sql(spec: fmt.NcmFile, unassigned: str) -> str:
    key = RULES[spec.stem].key
    columns = RULES[spec.stem].column_of_reason(spec)
    column_case = "CASE _problem " + " ".join(f"WHEN '{r}' THEN '{c}'" for r, c in columns.items()) + " END"
    match_key = " AND ".join(f"x.{k} = n.r.{k}" for k in key)
    return f"""
CREATE OR REPLACE TEMP TABLE _quarantine AS
SELECT '{unassigned}' AS scope, source_file, line, column_name, kind, reason, content FROM _rejected
UNION ALL
SELECT scope, source_file, line, {column_case}, _problem, _problem, CAST(r AS VARCHAR)
FROM _numbered WHERE _problem IS NOT NULL AND quarantined
UNION ALL
SELECT scope, source_file, line, CASE WHEN versions > 1 THEN '{", ".join(key)}' END,
       CASE WHEN versions > 1 THEN '{CONFLICT_REASON}' ELSE '{DUPLICATE_REASON}' END,
       CASE WHEN versions > 1 THEN '{CONFLICT_REASON}' ELSE '{DUPLICATE_REASON}' END, CAST(r AS VARCHAR)
FROM (
    SELECT x.scope, n.source_file, n.line, n.r, x.versions,
           row_number() OVER (PARTITION BY x.scope, n.r ORDER BY n.source_file, n.line) AS copy_no
    FROM _numbered n
    JOIN _suspects x ON x.scope = n.scope AND {match_key}
    WHERE n._problem IS NULL
) WHERE versions > 1 OR copy_no > 1
"""


def write_quarantine(
    con: duckdb.DuckDBPyConnection,
    spec: fmt.NcmFile,
    sources: list[Path],
    lake: Lake,
    flagged: Mapping[str, list[str]],
    params: dict,
) -> dict[str, Counter]:
    """Write one quarantine file per scope of the run (possibly empty); return the reasons counted per scope.

    Expects ``_rejected`` (from :func:`collect_rejects`), ``_suspects`` (from the publish pass) and ``_scopes``
    (scope name and loaded-rows bucket of each partition of the run).
    """
    row_type = "STRUCT(" + ", ".join(f"{c} {stored_type(spec, c)}" for c in stored_columns(spec)) + ")"
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _scanned (source_file VARCHAR, rn BIGINT, _problem VARCHAR, scope VARCHAR, "
        f"quarantined BOOLEAN, r {row_type})"
    )
    has_suspects = con.execute("SELECT count(*) FROM _suspects").fetchone()[0] > 0
    if has_suspects or any(flagged.values()):
        for source in sources:
            _rescan(con, spec, source, params)
    con.execute(_LINES_SQL)
    con.execute(_quarantine_rows_sql(spec, UNASSIGNED_SCOPE if spec.daily else SNAPSHOT_SCOPE))
    _check_rule_rows(con, spec, flagged)
    counted: dict[str, Counter] = {}
    for scope in flagged:
        copy_to_parquet(
            con,
            "SELECT source_file, line, column_name, reason, content FROM _quarantine WHERE scope = $scope "
            "ORDER BY source_file, line",
            lake.quarantine(spec.stem, scope),
            {"scope": scope},
        )
        kinds = con.execute(
            "SELECT kind, count(*) FROM _quarantine WHERE scope = $scope GROUP BY kind", {"scope": scope}
        ).fetchall()
        counted[scope] = Counter(dict(kinds))
    for table in ("_scanned", "_numbered", "_quarantine", "_rejected"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return counted


def _check_rule_rows(con: duckdb.DuckDBPyConnection, spec: fmt.NcmFile, flagged: Mapping[str, list[str]]) -> None:
    """The re-scan must find exactly the rows the fast pass flagged; anything else means the file changed."""
    expected = sum(
        con.execute("SELECT count(*) FROM read_parquet($f, hive_partitioning = false)", {"f": files}).fetchone()[0]
        for files in flagged.values()
        if files
    )
    found = con.execute("SELECT count(*) FROM _numbered WHERE _problem IS NOT NULL AND quarantined").fetchone()[0]
    if found != expected:
        raise RuntimeError(
            f"{spec.stem}: the ordered re-scan found {found} rows breaking a rule where the parallel pass "
            f"found {expected}; was the source file modified during the run?"
        )
