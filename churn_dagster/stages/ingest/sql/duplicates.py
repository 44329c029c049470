"""Rows that share their natural key within one partition: exact copies are loaded once, conflicts never.

The streaming pass records the hash of every loaded row's key, per partition; only when two rows of a
partition share a hash (none do in the real log) is that partition's file read back and its rows with those
hashes compared on the key itself. Exact copies keep their first line and quarantine the others; rows that share the key
but differ elsewhere are all quarantined, since none can be trusted over the others. The partition and its
quarantine file are then rewritten, in the same order, before anything is published.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

import duckdb
import numpy as np
import pyarrow as pa

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.stages.ingest.sql.outputs import QUARANTINE_SCHEMA, OrderedParquet
from churn_dagster.stages.ingest.sql.rules import RULES, stored_columns
from churn_dagster.storage.duck import literal_path

DUPLICATE_REASON = "duplicate of an identical row, which was loaded once"
CONFLICT_REASON = "rows share the natural key but disagree on other columns; none was loaded"


def colliding_hashes(key_hashes: Mapping[int, list[np.ndarray]], threads: int) -> dict[int, np.ndarray]:
    """Per bucket (in bucket order), the key hashes that occur more than once in it; buckets without any are
    left out. ``key_hashes`` holds each bucket's hashes in pieces, as the blocks delivered them.

    Each bucket is sorted on its own, ``threads`` at a time (NumPy sorts without the GIL): 3.5 s of CPU for
    the 55.6M rows of a full-scale impression file, where one DuckDB ``GROUP BY`` over all of them took 7 to
    8.5 s of wall time with two threads, at the end of the ingest, where nothing else runs beside it."""

    def repeated(pieces: list[np.ndarray]) -> np.ndarray:
        hashes = np.concatenate(pieces)
        hashes.sort()
        return np.unique(hashes[1:][hashes[1:] == hashes[:-1]])

    buckets = sorted(key_hashes)
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="duplicate-check") as pool:
        found = dict(zip(buckets, pool.map(repeated, (key_hashes[b] for b in buckets)), strict=True))
    return {b: h for b, h in found.items() if len(h)}


def resolve(
    con: duckdb.DuckDBPyConnection,
    spec: fmt.NcmFile,
    hashes: np.ndarray,
    partition: OrderedParquet,
    quarantine: OrderedParquet,
    source_file: str,
) -> tuple[OrderedParquet, OrderedParquet]:
    """Rewrite one partition without its duplicate and conflicting rows, and its quarantine file with them,
    both in line order; return the replacements (uncommitted). ``hashes``: the partition's key hashes that
    occur more than once (:func:`colliding_hashes`)."""
    key = RULES[spec.stem].key
    keys = ", ".join(key)
    columns = [c for c in stored_columns(spec) if c != "source_line"]
    partition.close()
    quarantine.close()
    part = {"part": literal_path(partition.temp)}
    con.register("_dup_hashes", pa.table({"h": pa.array(hashes, pa.uint64())}))
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _dup_rows AS
                SELECT * FROM read_parquet($part) WHERE hash({keys}) IN (SELECT h FROM _dup_hashes)""",
            part,
        )
    finally:
        con.unregister("_dup_hashes")
    row_text = "CAST(struct_pack(" + ", ".join(f"{c} := {c}" for c in columns) + ") AS VARCHAR)"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _dup_drop AS
            WITH k AS (
                SELECT {keys}, count(DISTINCT {row_text}) AS versions, min(source_line) AS first_line
                FROM _dup_rows GROUP BY ALL HAVING count(*) > 1
            )
            SELECT r.source_line, k.versions > 1 AS conflict, {row_text} AS content
            FROM _dup_rows r JOIN k USING ({keys})
            WHERE k.versions > 1 OR r.source_line > k.first_line"""
    )
    kept = con.sql(
        "SELECT * EXCLUDE (file_row_number) FROM read_parquet($part, file_row_number = true) "
        "WHERE source_line NOT IN (SELECT source_line FROM _dup_drop) ORDER BY file_row_number",
        params=part,
    ).to_arrow_table()
    key_names = ", ".join(spec.column(k).source for k in key)
    added = con.sql(
        f"""SELECT $source AS source_file, source_line AS line, '{key_names}' AS column_name,
                   CASE WHEN conflict THEN '{CONFLICT_REASON}' ELSE '{DUPLICATE_REASON}' END AS reason, content
            FROM _dup_drop""",
        params={"source": source_file},
    ).to_arrow_table()
    earlier = con.sql("SELECT * FROM read_parquet($q)", params={"q": literal_path(quarantine.temp)}).to_arrow_table()
    merged = pa.concat_tables([earlier.cast(QUARANTINE_SCHEMA), added.cast(QUARANTINE_SCHEMA)]).sort_by("line")
    for table in ("_dup_rows", "_dup_drop"):
        con.execute(f"DROP TABLE {table}")
    return _rewrite(partition, kept), _rewrite(quarantine, merged)


def _rewrite(old: OrderedParquet, rows: pa.Table) -> OrderedParquet:
    new = OrderedParquet(old.final, old.schema, tally=old.tally)  # counted again, without the dropped rows
    new.append(rows)
    new.close()
    old.abort()
    return new
