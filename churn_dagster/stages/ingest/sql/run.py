"""Load published NCM files into typed, per-day Parquet in one streaming pass, every line accounted for.

For each source file: its physical lines are read in blocks (:mod:`lines`); the lines already in their
strictest published form are typed by Arrow (:mod:`fast`, one block ahead in a worker thread), the others
by the exact SQL format layer; one DuckDB statement per path (:mod:`query`) checks and buckets every line,
and the results are appended in line order to the partition files and quarantine files they belong to
(:mod:`outputs`); the hashes of the loaded rows' keys are kept for the duplicate check (:mod:`duplicates`),
which runs once at the end. Only then is anything published, each file by an atomic rename.

Invariant, checked by the raw assets from the files themselves: lines read (counted from the newline
bytes) = rows loaded + rows quarantined + rows of days outside the run.
"""

from __future__ import annotations

import resource
import zlib
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.domain.calendar import Calendar
from churn_dagster.errors import UserError
from churn_dagster.stages.ingest.sql import duplicates
from churn_dagster.stages.ingest.sql.fast import FastLines
from churn_dagster.stages.ingest.sql.header import file_columns, unreadable
from churn_dagster.stages.ingest.sql.lines import (
    LineCount,
    line_tables,
    open_source,
    read_header,
    without_newlines,
)
from churn_dagster.stages.ingest.sql.outputs import (
    QUARANTINE_SCHEMA,
    OrderedParquet,
    OutputSet,
    stored_schema,
)
from churn_dagster.stages.ingest.sql.query import (
    FAST_TABLE,
    LINES_TABLE,
    UNASSIGNED,
    IngestQuery,
    attach,
    fast_ingest_query,
    ingest_query,
    sort_block,
)
from churn_dagster.stages.ingest.sql.tallies import TALLIES
from churn_dagster.storage.duck import literal_paths, used_params
from churn_dagster.storage.lake import Lake

SNAPSHOT_SCOPE = "all"


@dataclass(frozen=True)
class SourceFile:
    """One file to load; ``delivered_day`` is the day of the ``day=`` folder a daily file was delivered in."""

    path: Path
    delivered_day: date | None = None

    @property
    def unassigned_scope(self) -> str:
        """The quarantine file of this source's rows that have no usable day."""
        return f"unassigned/{self.path.name}"


@dataclass
class IngestResult:
    """What one run did with one kind of file (one file, or one per delivered day)."""

    stem: str
    sources: list[str]
    rows_read: int = 0
    rows_loaded: dict[str, int] = field(default_factory=dict)
    rows_outside_run: int = 0
    # Per written partition, what :mod:`tallies` counted in its rows (for files that have a tally).
    tallies: dict[str, Counter] = field(default_factory=dict)
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


class _Run:
    """The open output files of one ingest and the bookkeeping that decides where each slice goes."""

    def __init__(self, con, spec: fmt.NcmFile, lake: Lake, calendar: Calendar, days: list[date] | None):
        self.con, self.spec, self.lake, self.calendar = con, spec, lake, calendar
        self.threads = int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])  # DuckDB's setting
        self.outputs = OutputSet(self.threads)
        self.schema = stored_schema(spec)
        self.source_of: dict[str, str] = {}  # the one source file each scope's rows came from
        self.run_dts = frozenset(calendar.dt(d) for d in days or [])
        # Per bucket, the key hashes of its loaded rows, one array per block (views into the blocks' columns).
        self.key_hashes: dict[int, list[np.ndarray]] = defaultdict(list)
        self.outside = 0
        scopes = [d.isoformat() for d in days] if days is not None else [SNAPSHOT_SCOPE]
        for scope in scopes:  # every partition of the run is written, empty if no row belongs to it
            self.partition(scope)
            self.quarantine(scope)

    def scope_of(self, bucket: int, source: SourceFile) -> str:
        if not self.spec.daily:
            return SNAPSHOT_SCOPE
        return source.unassigned_scope if bucket == UNASSIGNED else self.calendar.day(bucket).isoformat()

    def partition(self, scope: str) -> OrderedParquet:
        final = self.lake.raw_snapshot(self.spec.stem) if scope == SNAPSHOT_SCOPE else self.lake.raw_day(
            self.spec.stem, date.fromisoformat(scope))
        return self.outputs.open(f"data:{scope}", final, self.schema, TALLIES.get(self.spec.stem))

    def quarantine(self, scope: str) -> OrderedParquet:
        return self.outputs.open(f"quarantine:{scope}", self.lake.quarantine(self.spec.stem, scope), QUARANTINE_SCHEMA)

    def take(self, rows: pa.Table, query: IngestQuery, source: SourceFile) -> None:
        """Route one block's sorted result: good rows to their partition, rejected rows to quarantine, rows of
        a day the run does not write nowhere (they are counted)."""
        rejected = pc.is_valid(rows["_rule"]).to_numpy(zero_copy_only=False)
        bucket = rows["_bucket"].to_numpy()
        starts = np.flatnonzero(np.r_[True, (rejected[1:] != rejected[:-1]) | (bucket[1:] != bucket[:-1])])
        for start, stop in zip(starts, [*starts[1:], len(bucket)], strict=True):
            piece, b = rows.slice(start, stop - start), int(bucket[start])
            if self.spec.daily and b != UNASSIGNED and b not in self.run_dts:
                self.outside += piece.num_rows
                continue
            scope = self.scope_of(b, source)
            self.source_of.setdefault(scope, str(source.path))
            if rejected[start]:
                self.quarantine(scope).append(_quarantine_rows(piece, query, str(source.path)))
            else:
                self.partition(scope).append(piece)
                self.key_hashes[b].append(piece["_key_hash"].to_numpy())

    def resolve_duplicates(self) -> None:
        for bucket, hashes in duplicates.colliding_hashes(self.key_hashes, self.threads).items():
            scope = SNAPSHOT_SCOPE if not self.spec.daily else self.calendar.day(bucket).isoformat()
            data, quarantine = self.outputs.files[f"data:{scope}"], self.outputs.files[f"quarantine:{scope}"]
            data, quarantine = duplicates.resolve(self.con, self.spec, hashes, data, quarantine, self.source_of[scope])
            self.outputs.files[f"data:{scope}"], self.outputs.files[f"quarantine:{scope}"] = data, quarantine


def _quarantine_rows(piece: pa.Table, query: IngestQuery, source_file: str) -> pa.Table:
    rule = piece["_rule"]
    return pa.table({
        "source_file": pa.array([source_file] * piece.num_rows, pa.string()),
        "line": piece["source_line"],
        "column_name": pa.array([r.column for r in query.rules], pa.string()).take(rule),
        "reason": pa.array([r.reason for r in query.rules], pa.string()).take(rule),
        "content": piece["_content"],
    }, schema=QUARANTINE_SCHEMA)


def _stream(run: _Run, source: SourceFile, params: dict) -> int:
    """Push one file through; return its lines after the header, as counted from its bytes. Canonical lines
    take the fast path (:mod:`fast`), the others the exact one; both results are sorted together, so each
    partition receives its rows in file order whichever path read them."""
    spec = run.spec
    order = file_columns(spec, source.path)
    delivered = source.delivered_day is not None
    query, fast_query = ingest_query(spec, order, delivered), fast_ingest_query(spec, order, delivered)
    if delivered:
        params = {**params, "delivered_dt": run.calendar.dt(source.delivered_day)}
    bound, fast_bound = used_params(query.sql, params), used_params(fast_query.sql, params)
    fast = FastLines(spec, order)
    count = LineCount()
    for typed, lines in _split_ahead(fast, _lines_after_header(source.path, count)):
        parts = []
        if typed is not None:
            parts.append(attach(typed, _run_block(run.con, FAST_TABLE, typed, fast_query.sql, fast_bound), spec))
        if lines.num_rows:
            parts.append(_run_block(run.con, LINES_TABLE, without_newlines(lines), query.sql, bound))
        if parts:
            rows = pa.concat_tables([parts[0], parts[1].cast(parts[0].schema)]) if len(parts) > 1 else parts[0]
            run.take(sort_block(rows), query, source)
    return count.lines


def _split_ahead(fast: FastLines, blocks: Iterator[pa.Table],
                 ahead: int = 2) -> Iterator[tuple[pa.Table | None, pa.Table]]:
    """``fast.split`` of each block, computed up to ``ahead`` blocks ahead in worker threads (Arrow releases the
    GIL), so that the next blocks are matched and parsed while this one runs through DuckDB into its files;
    results come back in block order."""
    with ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="fast-lines") as pool:
        pending: deque = deque()
        try:
            for block in blocks:
                pending.append(pool.submit(fast.split, block))
                if len(pending) > ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            blocks.close()  # a consumer that stops early releases the line reader at once


def _run_block(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table, sql: str, params: dict) -> pa.Table:
    con.register(name, table)
    try:
        return con.sql(sql, params=params).to_arrow_table()
    finally:
        con.unregister(name)


def _lines_after_header(path: Path, count: LineCount) -> Iterator[pa.Table]:
    """The file's line tables; a read that fails part-way (a gzip cut short or damaged, a file that became
    unreadable) is bad input named with the last line read, never a bare ``EOFError``."""
    try:
        with open_source(path) as stream:
            read_header(stream)
            yield from line_tables(stream, count)
    except (OSError, EOFError, zlib.error) as exc:
        raise unreadable(path, exc, after_line=1 + count.newlines) from exc


def ingest(
    con: duckdb.DuckDBPyConnection,
    spec: fmt.NcmFile,
    sources: list[SourceFile | Path],
    lake: Lake,
    calendar: Calendar,
    days: list[date] | None = None,
) -> IngestResult:
    """Load ``sources`` (one file, or one per delivered day) into the partitions for ``days``.

    ``days`` is the run's partition range for daily files and ``None`` for snapshot files. A delivered file
    belongs to one day of the run: its rows of other days are quarantined, not loaded elsewhere.
    """
    if spec.daily != (days is not None):
        raise ValueError(f"{spec.stem}: daily files need the run's days, snapshot files none")
    sources = [s if isinstance(s, SourceFile) else SourceFile(Path(s)) for s in sources]
    stray = [s for s in sources if s.delivered_day is not None and s.delivered_day not in (days or [])]
    if stray:
        raise ValueError(f"{spec.stem}: {stray[0].path} was delivered for {stray[0].delivered_day}, not a day of this run")
    params = {
        "num_days": calendar.num_days,
        "first_epoch_day": (calendar.first_day - date(1970, 1, 1)).days,
    }
    result = IngestResult(stem=spec.stem, sources=[str(s.path) for s in sources])
    _allow_open_files(len(days or []) + 64)
    run = _Run(con, spec, lake, calendar, days)
    try:
        for source in sources:
            if source.delivered_day is None and spec.daily:
                run.quarantine(source.unassigned_scope)  # replaces what an earlier run of this file left
            result.rows_read += _stream(run, source, params)
        run.resolve_duplicates()
        written = run.outputs.commit()
    except BaseException:
        run.outputs.abort()
        raise
    result.rows_outside_run = run.outside
    for name, rows in written.items():
        kind, scope = name.split(":", 1)
        if kind == "data":
            result.rows_loaded[scope] = rows
            result.tallies[scope] = run.outputs.files[name].tallies
        else:
            result.quarantine_files.append(str(lake.quarantine(spec.stem, scope)))
    result.quarantined_by_reason = quarantine_reasons(con, result.quarantine_files)
    return result


def _allow_open_files(needed: int) -> None:
    """Every day of the run has its partition file open while the source streams past (the days of a file
    are interleaved): a backfill of 18 months holds 548. Raise the soft limit on open files up to the hard
    one if that is needed, and say so plainly if even that is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise UserError(f"ingesting this many days at once needs {needed} open files, and the hard limit is {hard}; "
                      "run fewer days per run or raise `ulimit -Hn`")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def quarantine_reasons(con: duckdb.DuckDBPyConnection, files: list[str]) -> Counter:
    """Rows per reason in the quarantine files just written, counted from the files."""
    if not files:
        return Counter()
    rows = con.execute(
        "SELECT reason, count(*) FROM read_parquet($f, hive_partitioning = false) GROUP BY reason",
        {"f": literal_paths(files)},
    ).fetchall()
    return Counter(dict(rows))
