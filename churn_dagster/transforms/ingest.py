"""Load one published NCM file into typed Parquet, with every row accounted for.

Three steps, all DuckDB:

1. *Parse and sort into buckets* (one parallel pass over the CSV): each row is typed, checked against
   :mod:`ingest_rules`, and written to a staging bucket: its day (or ``all`` for snapshot files), a
   quarantine bucket, or ``outside`` when it belongs to a day this run does not write. Lines that do not
   parse at all land in DuckDB's rejects table with their line number.
2. *Publish each partition*: exact duplicate rows are collapsed to one, rows that disagree on the file's
   natural key are all quarantined, and the rest is written sorted (so re-runs give identical bytes) to a
   temporary file that is renamed into place.
3. *Quarantine* (:mod:`quarantine`): the rejected and suspect rows, with line numbers, per partition.

Invariant, checked by the asset: rows read = rows loaded + rows quarantined + rows outside the run's days.
"""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from churn_dagster import ncm_format as fmt
from churn_dagster.calendar import Calendar
from churn_dagster.transforms import quarantine
from churn_dagster.transforms.csv_source import read_csv_sql
from churn_dagster.transforms.duck import copy_to_parquet, used_params
from churn_dagster.transforms.ingest_rules import RULES
from churn_dagster.transforms.lake import Lake

SNAPSHOT_BUCKET = "all"
OUTSIDE_BUCKET = "outside"
QUARANTINE_PREFIX = "q_"
UNASSIGNED_SCOPE = "unassigned"


@dataclass
class IngestResult:
    """What one run did with one source file (or one file per day, for landed daily files)."""

    stem: str
    sources: list[str]
    rows_read: int = 0
    rows_loaded: dict[str, int] = field(default_factory=dict)
    rows_outside_run: int = 0
    quarantined_by_reason: Counter = field(default_factory=Counter)
    quarantine_files: list[str] = field(default_factory=list)

    @property
    def rows_quarantined(self) -> int:
        return sum(self.quarantined_by_reason.values())

    @property
    def total_loaded(self) -> int:
        return sum(self.rows_loaded.values())

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.total_loaded + self.rows_quarantined + self.rows_outside_run


def _epoch_day(day: date) -> int:
    return (day - date(1970, 1, 1)).days


def _bucket_sql(spec: fmt.NcmFile) -> str:
    if not spec.daily:
        return f"CASE WHEN _problem IS NULL THEN '{SNAPSHOT_BUCKET}' ELSE '{QUARANTINE_PREFIX}{SNAPSHOT_BUCKET}' END"
    day_key = "strftime($first_day + (dt - 1), '%Y-%m-%d')"
    valid_dt = "dt BETWEEN 1 AND $num_days"
    return f"""CASE
        WHEN dt IS NULL OR NOT ({valid_dt}) THEN '{QUARANTINE_PREFIX}{UNASSIGNED_SCOPE}'
        WHEN NOT list_contains($run_dts, dt) THEN '{OUTSIDE_BUCKET}'
        WHEN _problem IS NULL THEN {day_key}
        ELSE '{QUARANTINE_PREFIX}' || {day_key}
    END"""


def staged_rows_sql(spec: fmt.NcmFile, path: Path, rejects: str | None) -> tuple[str, dict]:
    """Typed rows of one file with the derived columns, ``_problem`` and ``_bucket``; shared with the rescan."""
    rules = RULES[spec.stem]
    read = read_csv_sql(spec, path, rejects)
    derived = "".join(f", {expr} AS {name}" for name, expr in rules.derived)
    sql = f"""
        SELECT *, {_bucket_sql(spec)} AS _bucket FROM (
            SELECT *, {rules.problem_sql(spec)} AS _problem FROM (SELECT *{derived} FROM ({read.sql}))
        )"""
    return sql, read.params


def stored_columns(spec: fmt.NcmFile) -> list[str]:
    rules = RULES[spec.stem]
    kept = [c.name for c in spec.columns if c.name not in rules.replaced]
    return kept + [name for name, _ in rules.derived]


def _parse_into_buckets(
    con: duckdb.DuckDBPyConnection,
    spec: fmt.NcmFile,
    path: Path,
    staging: Path,
    params: dict,
    rejects: str,
) -> Counter:
    """Pass 1: write every parsed row of ``path`` to its bucket; return row counts per bucket."""
    sql, read_params = staged_rows_sql(spec, path, rejects)
    staging.parent.mkdir(parents=True, exist_ok=True)
    row = "struct_pack(" + ", ".join(f"{c} := {c}" for c in stored_columns(spec)) + ")"
    query = f"""
        SELECT _bucket, _problem, CASE WHEN _bucket <> '{OUTSIDE_BUCKET}' THEN {row} END AS r
        FROM ({sql})"""
    stats = con.execute(
        f"COPY ({query}) TO $staging (FORMAT parquet, PARTITION_BY (_bucket), RETURN_STATS)",
        {**read_params, **used_params(query, params), "staging": str(staging)},
    ).fetchall()
    counts: Counter = Counter()
    for filename, count, *_ in stats:
        bucket = Path(filename).parent.name.split("=", 1)[1]
        counts[bucket] += int(count)
    return counts


def _publish_partition(
    con: duckdb.DuckDBPyConnection,
    spec: fmt.NcmFile,
    bucket_files: list[str],
    final: Path,
    scope: str,
) -> int:
    """Pass 2 for one partition: collapse exact duplicates, hold back key conflicts, write sorted.

    Groups that need quarantining (copies of one row, or rows disagreeing on the natural key) are added to
    the connection's ``_suspects`` table for :func:`quarantine.write_quarantine`. Returns rows written.
    """
    key = RULES[spec.stem].key
    if not bucket_files:
        empty = "SELECT " + ", ".join(f"NULL::{_stored_type(spec, c)} AS {c}" for c in stored_columns(spec))
        return copy_to_parquet(con, f"{empty} WHERE false", final)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _grouped AS
        SELECT r, _copies, count(*) OVER (PARTITION BY {", ".join(f"r.{k}" for k in key)}) AS _versions
        FROM (SELECT r, count(*) AS _copies FROM read_parquet($files, hive_partitioning = false) GROUP BY r)""",
        {"files": bucket_files},
    )
    written = copy_to_parquet(
        con, f"SELECT unnest(r) FROM _grouped WHERE _versions = 1 ORDER BY {', '.join(f'r.{k}' for k in key)}", final
    )
    con.execute(
        "INSERT INTO _suspects SELECT $scope, r, _copies, _versions FROM _grouped WHERE _copies > 1 OR _versions > 1",
        {"scope": scope},
    )
    con.execute("DROP TABLE _grouped")
    return written


def _stored_type(spec: fmt.NcmFile, name: str) -> str:
    if name == "detail_items":
        return (
            "STRUCT(mlog_id VARCHAR, position INTEGER, view_time DOUBLE, logtime_ms BIGINT, is_like BOOLEAN, "
            "is_comment BOOLEAN, is_into_homepage BOOLEAN, is_share BOOLEAN, is_view_comment BOOLEAN)[]"
        )
    return spec.column(name).duck_type


def ingest(
    con: duckdb.DuckDBPyConnection,
    spec: fmt.NcmFile,
    sources: list[Path],
    lake: Lake,
    calendar: Calendar,
    days: list[date] | None = None,
) -> IngestResult:
    """Load ``sources`` (one file, or one per day) into the partitions for ``days``.

    ``days`` is the run's partition range for daily files and ``None`` for snapshot files.
    """
    if spec.daily != (days is not None):
        raise ValueError(f"{spec.stem}: daily files need the run's days, snapshot files none")
    result = IngestResult(stem=spec.stem, sources=[str(p) for p in sources])
    run_id = uuid.uuid4().hex[:12]
    staging_root = lake.staging / f"ingest-{spec.stem}-{run_id}"
    params = {
        "num_days": calendar.num_days,
        "first_day": calendar.first_day,
        "first_epoch_day": _epoch_day(calendar.first_day),
        "run_dts": [calendar.dt(d) for d in days or []],
    }
    scopes = [d.isoformat() for d in days] if days is not None else [SNAPSHOT_BUCKET]
    try:
        bucket_counts: Counter = Counter()
        rejects_tables = []
        for i, path in enumerate(sources):
            rejects = f"_rejects_{i}"
            bucket_counts += _parse_into_buckets(con, spec, path, staging_root / str(i), params, rejects)
            rejects_tables.append(rejects)
        result.rows_outside_run = bucket_counts.pop(OUTSIDE_BUCKET, 0)
        parsed_rows = sum(bucket_counts.values()) + result.rows_outside_run
        result.rows_read = parsed_rows + quarantine.collect_rejects(con, rejects_tables, sources)

        row_type = "STRUCT(" + ", ".join(f"{c} {_stored_type(spec, c)}" for c in stored_columns(spec)) + ")"
        con.execute(f"CREATE OR REPLACE TEMP TABLE _suspects (scope VARCHAR, r {row_type}, copies BIGINT, versions BIGINT)")
        for scope in scopes:
            files = sorted(str(p) for p in staging_root.glob(f"*/_bucket={scope}/*.parquet"))
            final = lake.raw_day(spec.stem, date.fromisoformat(scope)) if spec.daily else lake.raw_snapshot(spec.stem)
            result.rows_loaded[scope] = _publish_partition(con, spec, files, final, scope)

        flagged = {
            scope: sorted(str(p) for p in staging_root.glob(f"*/_bucket={QUARANTINE_PREFIX}{scope}/*.parquet"))
            for scope in [*scopes, UNASSIGNED_SCOPE]
        }
        written = quarantine.write_quarantine(con, spec, sources, lake, flagged, params)
        for scope, reasons in written.items():
            result.quarantined_by_reason += reasons
            result.quarantine_files.append(str(lake.quarantine(spec.stem, scope)))
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
        con.execute("DROP TABLE IF EXISTS _suspects")
        for i in range(len(sources)):
            con.execute(f"DROP TABLE IF EXISTS _rejects_{i}")
            con.execute(f"DROP TABLE IF EXISTS _rejects_{i}_scan")
    return result
