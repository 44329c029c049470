"""Deliver a generated data set day by day into a landing folder, as a platform export would arrive.

The folder layout is the delivery contract of :mod:`churn_dagster.domain.delivery`: a ``day=YYYY-MM-DD/``
folder per day with the three daily files in exactly the published format and the ``_SUCCESS`` marker
written last; the three snapshot tables are copied to the top of the landing folder with the first delivery.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.domain.delivery import (
    DAILY_FILES,
    READY_MARKER,
    SNAPSHOT_FILES,
    day_folder,
)
from churn_dagster.storage.duck import literal_path
from churn_dagster.synth import writer


def _day_rows(con: duckdb.DuckDBPyConnection, source: Path, f: fmt.NcmFile, dt: int):
    """The rows of one ``dt`` as text, exactly as the file holds them (every column read as VARCHAR)."""
    columns = {c.source: "VARCHAR" for c in f.columns}
    return con.sql(
        "SELECT * FROM read_csv($path, header = true, auto_detect = false, columns = $columns, delim = ',', "
        "quote = '\"', escape = '\"', nullstr = $null) WHERE dt = $dt",
        params={"path": literal_path(source), "columns": columns, "null": f.null_token, "dt": str(dt)},
    ).to_arrow_table().rename_columns([c.name for c in f.columns])


def land_days(source: Path, landing: Path, days: list[date], first_day: date = date(2019, 11, 1)) -> list[Path]:
    """Write the deliveries of ``days`` from the generated files in ``source``; return the day folders."""
    landing.mkdir(parents=True, exist_ok=True)
    for f in SNAPSHOT_FILES:
        target = landing / writer.file_name(f, compress=False)
        if not target.exists():
            tmp = landing / f".{target.name}.tmp"
            shutil.copyfile(source / target.name, tmp)
            tmp.replace(target)
    folders = []
    con = duckdb.connect()
    try:
        for day in days:
            folder = day_folder(landing, day)
            folder.mkdir(exist_ok=True)
            (folder / READY_MARKER).unlink(missing_ok=True)
            dt = (day - first_day).days + 1
            for f in DAILY_FILES:
                writer.write_table(con, folder, f, _day_rows(con, source / writer.file_name(f, False), f, dt), False)
            (folder / READY_MARKER).touch()
            folders.append(folder)
    finally:
        con.close()
    return folders
