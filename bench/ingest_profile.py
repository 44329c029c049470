"""Where the impressions ingest spends its time: the same SQL as the pipeline, one ingredient at a time.

    python -m bench.ingest_profile --source DIR --work DIR

Pass 1 variants each read the whole impression file: the typed parse alone (what the floor does, with
explicit types), with DuckDB's rejects table, with the derived columns and rules, the same without parsing
the swipe-down lists, and finally bucketed per day as the ingest writes its staging. The publish pass is
then timed day by day on that staging: the hashed duplicate check, the sort alone, and the sorted write.
Run it twice and read the second run: the first pays for a cold page cache.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import time
from datetime import date
from pathlib import Path

from churn_dagster import ncm_format as fmt
from churn_dagster.transforms import staging
from churn_dagster.transforms.csv_source import read_csv_sql
from churn_dagster.transforms.duck import DuckSettings, connect, used_params
from churn_dagster.transforms.ingest_rules import RULES

SPEC = fmt.IMPRESSIONS
FIRST_DAY = date(2019, 11, 1)
PARAMS = {"num_days": 30, "first_day": FIRST_DAY, "first_epoch_day": (FIRST_DAY - date(1970, 1, 1)).days,
          "run_dts": list(range(1, 31))}


def timed(con, sql: str, params: dict) -> float:
    start = time.perf_counter()
    con.execute(sql, params)
    return time.perf_counter() - start


def timed_copy(con, query: str, params: dict, dst: Path, options: str = "") -> float:
    return timed(con, f"COPY ({query}) TO $dst (FORMAT parquet{options})", {**params, "dst": str(dst)})


def staged_query(source: Path, rejects: str | None) -> tuple[str, dict]:
    sql, params = staging.staged_rows_sql(SPEC, source, rejects)
    query = f"SELECT {', '.join(staging.stored_columns(SPEC))}, _problem, _bucket FROM ({sql})"
    return query, {**params, **used_params(query, PARAMS)}


def pass_one(con, source: Path, work: Path) -> dict[str, float]:
    results = {}
    for rejects in (None, "_rejects_typed"):
        read = read_csv_sql(SPEC, source, rejects)
        name = "typed parse" + (" + rejects table" if rejects else "")
        results[name] = timed_copy(con, read.sql, read.params, work / "typed.parquet")
    results["+ derived columns and rules"] = timed_copy(con, *staged_query(source, None), work / "rules.parquet")
    original = RULES[SPEC.stem]
    RULES[SPEC.stem] = dataclasses.replace(
        original,
        derived=(("detail_items", f"NULL::{staging.DETAIL_ITEMS_TYPE}"),),
        checks=tuple(c for c in original.checks if "detail" not in c[0]),
    )
    try:
        results["  the same without the swipe-down parse"] = timed_copy(
            con, *staged_query(source, None), work / "no_detail.parquet")
    finally:
        RULES[SPEC.stem] = original
    results["pass 1 as ingested (rejects, rules, per-day buckets)"] = timed_copy(
        con, *staged_query(source, "_rejects_staged"), work / "staging", ", PARTITION_BY (_bucket)")
    return results


def publish(con, work: Path) -> dict[str, float]:
    columns, keys = ", ".join(staging.stored_columns(SPEC)), ", ".join(RULES[SPEC.stem].key)
    totals = {"hashed duplicate check": 0.0, "sort alone": 0.0, "sorted write": 0.0}
    for dt in range(1, 31):
        files = {"files": sorted(str(p) for p in (work / "staging" / f"_bucket={dt}").glob("*.parquet"))}
        source = f"(SELECT {columns} FROM read_parquet($files, hive_partitioning = false))"
        totals["hashed duplicate check"] += timed(
            con, f"CREATE OR REPLACE TEMP TABLE _h AS SELECT hash({keys}) AS h FROM {source} "
                 "GROUP BY h HAVING count(*) > 1", files)
        ordered = f"SELECT * FROM {source} ORDER BY {keys}"
        totals["sort alone"] += timed(con, f"CREATE OR REPLACE TEMP TABLE _s AS {ordered}", files)
        con.execute("DROP TABLE _s")
        totals["sorted write"] += timed_copy(con, ordered, files, work / "day.parquet")
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, type=Path)
    parser.add_argument("--work", required=True, type=Path)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    con = connect(DuckSettings(temp_directory=args.work / "spill"))
    try:
        print("| impressions ingest, pass 1 (whole file) | s |\n|---|---|")
        for name, seconds in pass_one(con, args.source / "impression_data.csv", args.work).items():
            print(f"| {name} | {seconds:.1f} |")
        print("\n| publish, summed over 30 days | s |\n|---|---|")
        for name, seconds in publish(con, args.work).items():
            print(f"| {name} | {seconds:.1f} |")
    finally:
        con.close()
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
