"""The impressions of each cohort's observation window, read from the raw days once for every reader.

The sessions, the KPI aggregates, the continuation requests, the trend inputs and the continuation examples'
recount all read the same rows: the impressions of a cohort's users from their first day to the end of their
observation window. In the raw day tables those rows lie among every other user's (on the twin a cohort
holds about 5 % of its window's impressions, the first cohort, which counts every user already active on the
log's first day, about a quarter), so each reader scanned two weeks of impressions to find them: five scans
for one cohort when a day lands. ``window_impressions`` extracts them once, one file per cohort, and the
readers run their SQL unchanged (the same join on the window's bounds) over that file instead of the days.

The extract keeps every stored column of the raw table, ``source_line`` included, so a derived row can still
be traced to its line of the source file. Rows are sorted by the raw table's key (user, request time,
position, card), so a re-run writes the same bytes. Values are copied as read: unlike the
derived tables, nothing is rounded.
"""

from __future__ import annotations

from datetime import date

import duckdb

from churn_dagster.domain.calendar import Calendar
from churn_dagster.stages.cohorts.sql.cohorts import activity_paths, cohort_days_dts, cohort_paths
from churn_dagster.storage.duck import literal_paths, write_partitions
from churn_dagster.storage.lake import Lake, require

TABLE = "window_impressions"

WINDOW_SQL = """
CREATE OR REPLACE TEMP TABLE _window_impressions AS
SELECT u.cohort_day, i.*
FROM read_parquet($impression_paths, hive_partitioning = false) i
JOIN read_parquet($cohort_paths, hive_partitioning = false) u
  ON i.user_id = u.user_id AND i.dt BETWEEN u.first_dt AND u.observation_end_dt
"""

# The raw table's key (its duplicate check leaves one row per key), so the order is total.
ORDER = "user_id, impress_time_ms, impress_position, mlog_id"

# The impressions the daily activity counts in each cohort's windows: user_day_activity is built from the raw
# day alone, so it counts the window's rows without the extract's join.
EXPECTED_SQL = """
SELECT u.cohort_day, coalesce(sum(a.impressions), 0)::BIGINT
FROM read_parquet($cohort_paths, hive_partitioning = false) u
JOIN read_parquet($activity_paths, hive_partitioning = false) a
  ON a.user_id = u.user_id AND a.dt BETWEEN u.first_dt AND u.observation_end_dt
GROUP BY u.cohort_day
"""


def build_window_impressions(
    con: duckdb.DuckDBPyConnection, lake: Lake, calendar: Calendar, cohorts: list[date]
) -> dict[date, int]:
    """Write each cohort's window impressions to ``lake``'s ``window_impressions``; return their row counts."""
    dts = cohort_days_dts(calendar, cohorts, "observation")
    con.execute(WINDOW_SQL, {
        "impression_paths": literal_paths(
            require((lake.raw_day("impression_data", calendar.day(d)) for d in dts), TABLE)),
        "cohort_paths": cohort_paths(lake, "cohort_users", cohorts, TABLE),
    })
    written = write_partitions(con, "_window_impressions", "cohort_day", {c: lake.cohort(TABLE, c) for c in cohorts},
                               ORDER, round_floats=False, drop=("cohort_day",))
    con.execute("DROP TABLE _window_impressions")
    return written


def expected_rows(con: duckdb.DuckDBPyConnection, lake: Lake, calendar: Calendar, cohorts: list[date]) -> dict[date, int]:
    """Each cohort's window impressions as the daily activity counts them (0 for a cohort without users)."""
    dts = cohort_days_dts(calendar, cohorts, "observation")
    found = dict(con.execute(EXPECTED_SQL, {
        "cohort_paths": cohort_paths(lake, "cohort_users", cohorts, f"{TABLE} check"),
        "activity_paths": activity_paths(lake, calendar, dts, f"{TABLE} check"),
    }).fetchall())
    return {c: int(found.get(c, 0)) for c in cohorts}


def window_paths(lake: Lake, cohorts: list[date], what: str) -> list[str]:
    """The window impressions of ``cohorts`` as DuckDB must receive them; ``what`` names the reader in the
    error when a cohort's file is missing."""
    return cohort_paths(lake, TABLE, cohorts, what)
