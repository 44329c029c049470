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
from churn_dagster.transforms.duck import copy_to_parquet_with_stats, used_params
from churn_dagster.transforms.ingest_rules import RULES
from churn_dagster.transforms.lake import Lake
from churn_dagster.transforms.staging import (
    OUTSIDE_BUCKET,
    QUARANTINE_OFFSET,
    SNAPSHOT_BUCKET,
    SNAPSHOT_SCOPE,
    UNASSIGNED_BUCKET,
    UNASSIGNED_SCOPE,
    staged_rows_sql,
    stored_columns,
    stored_type,
)

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
    non_null: Counter = field(default_factory=Counter)  # loaded values per column that are not NULL

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


def _quarantine_bucket(bucket: int) -> int:
    return bucket if bucket == UNASSIGNED_BUCKET else QUARANTINE_OFFSET + bucket


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
    query = f"SELECT {', '.join(stored_columns(spec))}, _problem, _bucket FROM ({sql})"
    stats = con.execute(
        f"COPY ({query}) TO $staging (FORMAT parquet, PARTITION_BY (_bucket), RETURN_STATS)",
        {**read_params, **used_params(query, params), "staging": str(staging)},
    ).fetchall()
    counts: Counter = Counter()
    for filename, count, *_ in stats:
        counts[int(Path(filename).parent.name.split("=", 1)[1])] += int(count)
    return counts


def _publish_partition(
    con: duckdb.DuckDBPyConnection,
    spec: fmt.NcmFile,
    bucket_files: list[str],
    final: Path,
    scope: str,
) -> tuple[int, dict]:
    """Pass 2 for one partition: collapse exact duplicates, hold back key conflicts, write sorted.

    Keys held by more than one row are recorded in the connection's ``_suspects`` table with the number of
    distinct versions (1: exact copies, of which one is loaded; more: a conflict, none is loaded) for
    :func:`quarantine.write_quarantine`. Returns the rows written and their column statistics.
    """
    key = RULES[spec.stem].key
    columns = ", ".join(stored_columns(spec))
    if not bucket_files:
        empty = "SELECT " + ", ".join(f"NULL::{stored_type(spec, c)} AS {c}" for c in stored_columns(spec))
        return copy_to_parquet_with_stats(con, f"{empty} WHERE false", final)
    files = {"files": bucket_files}
    source = f"(SELECT {columns} FROM read_parquet($files, hive_partitioning = false))"
    keys = ", ".join(key)
    # Hashing the key finds candidate duplicates far faster than grouping on it; in the usual case there are
    # none and the day is written straight away. Candidates are compared on the key itself, so a hash
    # collision costs nothing but a closer look.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _day_suspects AS "
        f"SELECT hash({keys}) AS h FROM {source} GROUP BY h HAVING count(*) > 1",
        files,
    )
    query = f"SELECT * FROM {source} ORDER BY {keys}"
    if con.execute("SELECT count(*) FROM _day_suspects").fetchone()[0] > 0:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _day_suspects AS
                SELECT {keys}, count(DISTINCT CAST(struct_pack({columns}) AS VARCHAR)) AS versions
                FROM {source} s WHERE hash({keys}) IN (SELECT h FROM _day_suspects)
                GROUP BY ALL HAVING count(*) > 1""",
            files,
        )
        on_key = " AND ".join(f"s.{k} = d.{k}" for k in key)
        query = f"""SELECT * FROM (
                SELECT s.* FROM {source} s ANTI JOIN _day_suspects d ON {on_key}
                UNION ALL
                SELECT DISTINCT s.* FROM {source} s SEMI JOIN (SELECT * FROM _day_suspects WHERE versions = 1) d ON {on_key}
            ) ORDER BY {keys}"""
        con.execute(f"INSERT INTO _suspects SELECT $scope, {keys}, versions FROM _day_suspects", {"scope": scope})
    written = copy_to_parquet_with_stats(con, query, final, files)
    con.execute("DROP TABLE _day_suspects")
    return written


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
    # scope (partition or quarantine file name) -> the bucket of its loaded rows
    scopes = {d.isoformat(): calendar.dt(d) for d in days} if days is not None else {SNAPSHOT_SCOPE: SNAPSHOT_BUCKET}
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

        key_types = ", ".join(f"{k} {stored_type(spec, k)}" for k in RULES[spec.stem].key)
        con.execute(f"CREATE OR REPLACE TEMP TABLE _suspects (scope VARCHAR, {key_types}, versions BIGINT)")
        for scope, bucket in scopes.items():
            files = sorted(str(p) for p in staging_root.glob(f"*/_bucket={bucket}/*.parquet"))
            final = lake.raw_day(spec.stem, date.fromisoformat(scope)) if spec.daily else lake.raw_snapshot(spec.stem)
            result.rows_loaded[scope], stats = _publish_partition(con, spec, files, final, scope)
            result.non_null += stats

        quarantine_scopes = {**scopes, UNASSIGNED_SCOPE: UNASSIGNED_BUCKET} if spec.daily else scopes
        con.execute("CREATE OR REPLACE TEMP TABLE _scopes (scope VARCHAR, bucket INTEGER)")
        con.executemany("INSERT INTO _scopes VALUES (?, ?)", list(quarantine_scopes.items()))
        flagged = {
            scope: sorted(str(p) for p in staging_root.glob(f"*/_bucket={_quarantine_bucket(bucket)}/*.parquet"))
            for scope, bucket in quarantine_scopes.items()
        }
        written = quarantine.write_quarantine(con, spec, sources, lake, flagged, params)
        for scope, reasons in written.items():
            result.quarantined_by_reason += reasons
            result.quarantine_files.append(str(lake.quarantine(spec.stem, scope)))
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
        con.execute("DROP TABLE IF EXISTS _suspects")
        con.execute("DROP TABLE IF EXISTS _scopes")
        for i in range(len(sources)):
            con.execute(f"DROP TABLE IF EXISTS _rejects_{i}")
            con.execute(f"DROP TABLE IF EXISTS _rejects_{i}_scan")
    return result
