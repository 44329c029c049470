"""Load an event log into the canonical event table and its quarantine, every record accounted for.

The source stages every record as text (:mod:`sql.sources`), one statement judges them
(:mod:`sql.canonical`), and both outputs are published by atomic renames only once the count holds:
records counted from the source itself (newlines, Parquet footers, ``count(*)``) = records staged = events
loaded + duplicates + records quarantined. A mismatch is a defect, never bad input, and publishes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from churn_dagster.stages.events.sql import canonical
from churn_dagster.stages.events.sql import users as users_sql
from churn_dagster.stages.events.sql.mapping import EventMapping
from churn_dagster.stages.events.sql.sources import (
    FileSource,
    PostgresSource,
    create_staging,
    event_columns,
)
from churn_dagster.stages.events.sql.users import UsersMapping
from churn_dagster.storage.duck import copy_to_parquet

STAGED = "_staged"


class CountMismatch(RuntimeError):
    """Records counted from the source differ from those loaded and quarantined: a defect."""


@dataclass(frozen=True)
class LoadSummary:
    counted: int
    loaded: int
    quarantined: int
    users: int
    first_day: str | None
    last_day: str | None
    reasons: list[tuple[str, int]]


def load_events(con: duckdb.DuckDBPyConnection, source: FileSource | PostgresSource, mapping: EventMapping,
                events_path: Path, quarantine_path: Path, progress: Callable[[str], None] = lambda _: None
                ) -> LoadSummary:
    """Stage, judge and write; return the counts the asset reports and its check verifies."""
    columns = event_columns(mapping.columns())
    create_staging(con, STAGED, columns)
    progress(f"reading {source.label()}")
    counted = source.stage(con, columns, STAGED)
    con.execute(canonical.load_sql(mapping, STAGED, columns))
    staged, _ = canonical.counts(con)
    if staged != counted:
        raise CountMismatch(f"{counted} records counted in {source.label()}, {staged} staged")
    progress(f"{staged:,} records staged; writing the events and the quarantine")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _events AS {canonical.events_sql(mapping)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _quarantine AS {canonical.quarantine_sql(mapping)}")
    loaded = con.execute("SELECT count(*) FROM _events").fetchone()[0]
    quarantined = con.execute("SELECT count(*) FROM _quarantine").fetchone()[0]
    if loaded + quarantined != counted:
        raise CountMismatch(f"{counted} records counted in {source.label()}, {loaded} loaded + {quarantined} quarantined")
    copy_to_parquet(con, "SELECT * FROM _events ORDER BY user_id, event_ms, event_type, item_id NULLS FIRST, "
                         "value NULLS FIRST, file, line", events_path)
    copy_to_parquet(con, "SELECT * FROM _quarantine ORDER BY file, line", quarantine_path)
    users, first, last = con.execute("SELECT count(DISTINCT user_id), min(local_day), max(local_day) FROM _events").fetchone()
    reasons = con.execute("SELECT reason, count(*) AS n FROM _quarantine GROUP BY reason ORDER BY n DESC, reason "
                          "LIMIT 20").fetchall()
    con.execute(f"DROP TABLE {STAGED}; DROP TABLE _checked; DROP TABLE _events; DROP TABLE _quarantine")
    return LoadSummary(counted, int(loaded), int(quarantined), int(users), first and first.isoformat(),
                       last and last.isoformat(), [(r, int(n)) for r, n in reasons])


def sample(con: duckdb.DuckDBPyConnection, source: FileSource | PostgresSource, mapping: EventMapping,
           rows: int) -> dict[str, list]:
    """The first ``rows`` records as text by contract field, and why each sampled time does not parse."""
    columns = event_columns(mapping.columns())
    create_staging(con, "_sample", columns)
    source.stage(con, columns, "_sample", limit=rows)
    fields = list(mapping.columns())
    found = con.execute(f"SELECT {', '.join(fields)}, {mapping.time.reason('event_time')} "
                        f"FROM {canonical.readable(mapping, '_sample', columns)} "
                        "WHERE problem IS NULL ORDER BY file, line").fetchall()
    con.execute("DROP TABLE _sample")
    out = {f: [r[k] for r in found] for k, f in enumerate(fields)}
    out["_time_reasons"] = [r[-1] for r in found]
    return out


def event_types(con: duckdb.DuckDBPyConnection, source: FileSource | PostgresSource, mapping: EventMapping
                ) -> set[str] | None:
    """Every event type of the whole source (None when the mapping has no event_type column)."""
    if not mapping.event_type:
        return None
    columns = {"event_type": mapping.event_type}
    create_staging(con, "_types", columns)
    source.stage(con, columns, "_types")
    found = {r[0] for r in con.execute("SELECT DISTINCT trim(event_type) FROM _types WHERE problem IS NULL "
                                       "AND event_type IS NOT NULL AND trim(event_type) <> ''").fetchall()}
    con.execute("DROP TABLE _types")
    return found


def load_users(con: duckdb.DuckDBPyConnection, source: FileSource | PostgresSource, mapping: UsersMapping,
               users_path: Path, quarantine_path: Path) -> tuple[int, int, int]:
    """The users table, one row per user, and its quarantine; (counted, loaded, quarantined), which must add up."""
    columns = mapping.staged_columns()
    create_staging(con, "_users_staged", columns)
    counted = source.stage(con, columns, "_users_staged")
    con.execute(users_sql.checked_sql(mapping, "_users_staged"))
    loaded, quarantined = con.execute("SELECT count(*) - count(reason), count(reason) FROM _users_checked").fetchone()
    if loaded + quarantined != counted:
        raise CountMismatch(f"{counted} users counted in {source.label()}, {loaded} loaded + {quarantined} quarantined")
    attributes = "".join(f", a_{k}" for k in range(len(mapping.attributes)))
    copy_to_parquet(con, f"SELECT user_id, signup_ms{attributes} FROM _users_checked WHERE reason IS NULL "
                         "ORDER BY user_id", users_path)
    copy_to_parquet(con, 'SELECT file, line, bad_column AS "column", bad_value AS value, reason '
                         "FROM _users_checked WHERE reason IS NOT NULL ORDER BY file, line", quarantine_path)
    con.execute("DROP TABLE _users_staged; DROP TABLE _users_checked")
    return counted, loaded, quarantined
