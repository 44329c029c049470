"""DuckDB connections with bounded memory, and atomic publication of what they write.

Every statement that touches the impression log runs through :func:`connect`, which sets a memory limit,
a spill directory and ``preserve_insertion_order=false`` (with it on, large COPY statements buffer whole
result sets and ran out of memory at full scale). Outputs are written to a temporary name in the target
folder and renamed into place, so a reader never sees a partial file and a re-run replaces a partition
exactly.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

DERIVED_DECIMALS = 10

# A floating-point sum depends on the order of its terms, and DuckDB's parallel aggregation adds the threads'
# partial sums in whichever order they finish, so the same query can end in other last bits from run to run.
# Rounding to DERIVED_DECIMALS hides that except for a value lying next to a rounding boundary: at full scale a
# few values in a million, enough that a re-run of the KPI features rewrote different bytes. Summed as
# DECIMAL(38, 18) (each term rounded to 18 places, then added as 128-bit integers) a sum is exact, hence the
# same in any order; 20 integer digits hold any sum the pipeline makes. Every aggregate of DOUBLE terms that
# reaches a stored table goes through these; sums and averages of integers are exact already.
EXACT_DECIMAL = "DECIMAL(38, 18)"


def exact_sum(expr: str) -> str:
    """SQL for the order-independent sum of the DOUBLE expression ``expr`` (NULL over no row)."""
    return f"sum(({expr})::{EXACT_DECIMAL})::DOUBLE"


def exact_avg(expr: str) -> str:
    """SQL for the order-independent mean of the DOUBLE expression ``expr`` (an exact sum over a count)."""
    return f"avg(({expr})::{EXACT_DECIMAL})"


@dataclass(frozen=True)
class DuckSettings:
    """Resource limits for one DuckDB connection."""

    memory_limit: str = "6GB"
    threads: int = 2
    temp_directory: Path = Path("/tmp/churn_dagster_duckdb")


def connect(settings: DuckSettings) -> duckdb.DuckDBPyConnection:
    settings.temp_directory.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"threads": settings.threads})
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET memory_limit = $m", {"m": settings.memory_limit})
    con.execute("SET temp_directory = $t", {"t": str(settings.temp_directory)})
    return con


_GLOB_CHARACTERS = re.compile(r"([*?\[])")


def literal_path(path: Path | str) -> str:
    """A file path as DuckDB must receive it to read that file and nothing else.

    DuckDB expands ``*``, ``?`` and ``[...]`` in the file arguments of its readers, so a folder named
    ``src[1]`` would read a sibling ``src1``; each such character is wrapped in a class that matches only
    itself (``[[]``, ``[*]``, ``[?]``).
    """
    return _GLOB_CHARACTERS.sub(r"[\1]", str(path))


def literal_paths(paths) -> list[str]:
    return [literal_path(p) for p in paths]


def used_params(sql: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``params`` that ``sql`` references as ``$name`` (DuckDB rejects unused ones)."""
    return {k: v for k, v in params.items() if re.search(rf"\${re.escape(k)}\b", sql)}


def _temp_sibling(final: Path) -> Path:
    return final.parent / f".{final.name}.tmp-{uuid.uuid4().hex}"


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it onto ``final`` only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(final)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def copy_to_parquet(
    con: duckdb.DuckDBPyConnection,
    query: str,
    final: Path,
    params: Mapping[str, Any] | None = None,
) -> int:
    """Write ``query`` to ``final`` as one zstd Parquet file, atomically; return the row count."""
    with atomic_path(final) as tmp:
        con.execute(
            f"COPY ({query}) TO $__target (FORMAT parquet, COMPRESSION zstd)",
            {**used_params(query, params or {}), "__target": str(tmp)},
        )
    return parquet_rows(con, [final])


def parquet_rows(con: duckdb.DuckDBPyConnection, paths: Sequence[Path]) -> int:
    if not paths:
        return 0
    row = con.execute(
        "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata($p)", {"p": literal_paths(paths)}
    ).fetchone()
    return int(row[0])


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Build a folder of several files and swap it in with one atomic rename of a symbolic link.

    ``final`` becomes a link to a versioned sibling folder under ``.versions``; a reader resolves the link
    once (:func:`resolve_version`) and sees either the old set of files or the new one, never a mix. The
    version just replaced is kept, so a reader that resolved it a moment ago can still open its files;
    older versions of the same folder are removed. Only folders this function created under ``.versions``
    are ever removed: whatever else ``final`` pointed to (a link a user made to another disk) is left
    alone, and only the link is replaced.
    """
    versions = final.parent / ".versions"
    versions.mkdir(parents=True, exist_ok=True)
    new_version = versions / f"{final.name}-{uuid.uuid4().hex}"
    new_version.mkdir()
    try:
        yield new_version
    except BaseException:
        shutil.rmtree(new_version, ignore_errors=True)
        raise
    previous = final.resolve() if final.is_symlink() else None
    link_tmp = _temp_sibling(final)
    os.symlink(os.path.relpath(new_version, final.parent), link_tmp)
    if final.is_dir() and not final.is_symlink():
        shutil.rmtree(final)  # a plain folder of an older layout, inside the data directory
    os.replace(link_tmp, final)
    for old in versions.iterdir():
        if not old.name.startswith(f"{final.name}-") or old.is_symlink() or not old.is_dir():
            continue
        if old.resolve() not in (new_version.resolve(), previous):
            shutil.rmtree(old)


def resolve_version(folder: Path) -> Path:
    """The version a folder written by :func:`atomic_dir` points to now; read every file of one build from
    the returned path, never through the link again."""
    return folder.resolve(strict=True)


def write_partitions(
    con: duckdb.DuckDBPyConnection,
    table: str,
    key_column: str,
    targets: Mapping[Any, Path],
    order_by: str,
    round_floats: bool = True,
    drop: Sequence[str] = (),
) -> dict[Any, int]:
    """Write each key's rows of temp table ``table`` to its own file, sorted, without the columns ``drop``.

    Every target is written, empty if the key has no rows, so re-running a partition replaces it exactly.
    Floating-point columns are rounded to ``DERIVED_DECIMALS`` places: parallel aggregation sums in a
    varying order, and the rounding makes a re-run write the same bytes, whether a partition was computed
    alone or in a range. A table of rows copied, not computed, passes ``round_floats=False``.
    """
    columns = [c for c in con.execute(f"DESCRIBE {table}").fetchall() if c[0] not in drop]
    select = ", ".join(
        f"round({name}, {DERIVED_DECIMALS}) AS {name}" if round_floats and typ in ("DOUBLE", "FLOAT") else name
        for name, typ, *_ in columns
    )
    # With statistics propagation on, a column without NULLs *in the whole table* is written as a required
    # Parquet field, so a partition's bytes would depend on which other cohorts shared the run.
    con.execute("SET disabled_optimizers = 'statistics_propagation'")
    try:
        return {
            key: copy_to_parquet(
                con,
                f"SELECT {select} FROM {table} WHERE {key_column} = $key ORDER BY {order_by}",
                path,
                {"key": key},
            )
            for key, path in targets.items()
        }
    finally:
        con.execute("RESET disabled_optimizers")
