"""The floor: a bare DuckDB read of impression_data.csv written to one Parquet file, no transformation.

    python -m bench.floor_baseline --source DIR

Types auto-detected, 2 threads, ``memory_limit`` 6GB, insertion order not preserved: the least any pipeline
must spend to get the log out of CSV. Its RESULT is the COPY's own seconds, without the process start-up,
so that ratios against it are strict. The Parquet file goes to a temporary folder beside the source.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import duckdb

from bench.baseline_common import Phases, main


def run(source: str, _cohorts: int, _phase: Phases) -> dict:
    con = duckdb.connect(config={"threads": 2, "memory_limit": "6GB", "preserve_insertion_order": False})
    with tempfile.TemporaryDirectory(dir=Path(source).parent) as tmp:
        start = time.perf_counter()
        con.execute("COPY (SELECT * FROM read_csv($src, nullstr = 'NA')) TO $dst (FORMAT parquet)",
                    {"src": f"{source}/impression_data.csv", "dst": f"{tmp}/floor.parquet"})
        return {"seconds": time.perf_counter() - start}


if __name__ == "__main__":
    main(__doc__, run)
