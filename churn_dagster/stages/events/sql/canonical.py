"""The canonical event table: every staged record typed and checked by one statement, loaded once or
quarantined with its file, line, column and reason.

A record is quarantined for the first rule it breaks, in the order of :func:`rules`: a line-level problem
(field count, encoding, quoting), an empty user, a time that is not one (:mod:`times`), an empty event
type or one outside the declared list, a value that is not a finite number. A record equal to an earlier
one in every contract field (the same event delivered twice) is loaded once; the later copies are
quarantined as duplicates of the first (by file and line). Both outputs are sorted on content, so a re-run
writes the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from churn_dagster.stages.events.sql.mapping import DEFAULT_EVENT_TYPE, EventMapping
from churn_dagster.stages.events.sql.times import sql_text

MAX_ID_CHARS = 256
# What a quarantine row keeps of the offending value.
SHOWN_VALUE_CHARS = 200
SAME_EVENT = "user_id, event_ms, event_type, item_id, item_owner, value, session_id"


def same_event(mapping: EventMapping) -> str:
    """The columns that make two loaded records the same event: the event id where the log has one."""
    return "event_id" if mapping.event_id else SAME_EVENT


@dataclass(frozen=True)
class Rule:
    """``condition`` is true for a record that breaks the rule; ``field`` names the contract field."""

    condition: str
    field: str
    reason: str


def _ids(field: str) -> list[Rule]:
    return [Rule(f"length({field}) > {MAX_ID_CHARS}", field, f"longer than {MAX_ID_CHARS} characters")]


# The largest magnitude of an event's value: the features sum values, and values times day numbers, exactly
# (storage.duck.exact_sum, 20 integer digits), which ten million events of one user in a ten-year window
# still fit (1e9 x 3,650 x 1e7 < 1e20).
MAX_ABS_VALUE = 1e9


def rules(mapping: EventMapping) -> list[Rule]:
    """The checks of a staged record, in the order a record is judged (over ``TimeRule.timed`` of it)."""
    found = [Rule("problem IS NOT NULL", "(line)", "problem"),
             Rule("user_id IS NULL OR trim(user_id) = ''", "user_id", "empty"), *_ids("user_id"),
             Rule("_t_reason IS NOT NULL", "event_time", "_t_reason")]  # columns of TimeRule.timed
    if mapping.event_type:
        found.append(Rule("event_type IS NULL OR trim(event_type) = ''", "event_type", "empty"))
        found.extend(_ids("event_type"))
    for k in range(len(mapping.flags)):
        found.append(Rule(f"flag_{k} IS NOT NULL AND trim(flag_{k}) NOT IN ('', '0', '1')", f"flag_{k}", "not 0 or 1"))
    if mapping.value:
        found.append(Rule("value IS NOT NULL AND trim(value) <> '' AND NOT isfinite(try_cast(value AS DOUBLE))",
                          "value", "not a finite number"))
        found.append(Rule(f"value IS NOT NULL AND trim(value) <> '' AND abs(try_cast(value AS DOUBLE)) > {MAX_ABS_VALUE:.0e}",
                          "value", f"beyond ±{MAX_ABS_VALUE:.0e}, more than an exact sum of values can hold"))
        found.append(Rule("value IS NOT NULL AND trim(value) <> '' AND try_cast(value AS DOUBLE) IS NULL",
                          "value", "not a number"))
    for optional in ("item_id", "item_owner", "session_id", "event_id"):
        if getattr(mapping, optional):
            found.extend(_ids(optional))
    return found


def _reason_sql(rule: Rule) -> str:
    """A rule's reason as SQL: a text literal, or the column that holds it for the line problem and the time."""
    if rule.reason == "problem":
        return "problem"
    return rule.reason if rule.field == "event_time" else sql_text(rule.reason)


def readable(mapping: EventMapping, staged: str, fields) -> str:
    """``staged`` as a subquery with the log's spellings of a missing value (``null_values``) read as NULL
    in each of ``fields``, so every rule and every typed value sees one kind of missing."""
    if not mapping.null_values:
        return staged
    tokens = ", ".join(sql_text(t) for t in mapping.null_values)
    kept = ", ".join(f"CASE WHEN {f} IN ({tokens}) THEN NULL ELSE {f} END AS {f}" for f in fields)
    return f"(SELECT file, line, problem, {kept} FROM {staged})"


def _event_type_sql(mapping: EventMapping) -> str:
    if mapping.event_type:
        return "trim(event_type)"
    if mapping.flags:
        cases = " ".join(f"WHEN trim(flag_{k}) = '1' THEN {sql_text(t)}" for k, (t, _) in enumerate(mapping.flags))
        return f"CASE {cases} ELSE {sql_text(mapping.unflagged_type)} END"
    return sql_text(DEFAULT_EVENT_TYPE)


def load_sql(mapping: EventMapping, staged: str, fields) -> str:
    """A statement creating ``_checked``: every staged record (of the staged ``fields``) with its verdict
    (``bad_field``, ``reason``) and, for good ones, the typed canonical values."""
    columns = mapping.columns()
    cases = [(r.condition, r.field, _reason_sql(r)) for r in rules(mapping)]
    bad_field = "CASE " + " ".join(f"WHEN {c} THEN {sql_text(f)}" for c, f, _ in cases) + " END"
    reason = "CASE " + " ".join(f"WHEN {c} THEN {r}" for c, _, r in cases) + " END"
    value = "try_cast(nullif(trim(value), '') AS DOUBLE)" if mapping.value else "NULL::DOUBLE"
    source_column = "CASE _bad_field " + " ".join(
        f"WHEN {sql_text(f)} THEN {sql_text(c)}" for f, c in columns.items()) + " ELSE _bad_field END"
    bad_value = "CASE _bad_field " + " ".join(f"WHEN {sql_text(f)} THEN {f}" for f in columns) + " END"
    shown_field = "CASE _bad_field " + " ".join(
        f"WHEN {sql_text(f)} THEN {sql_text(mapping.yaml_key(f))}" for f in columns if f.startswith("flag_")
    ) + " ELSE _bad_field END" if mapping.flags else "_bad_field"
    return f"""
        CREATE OR REPLACE TEMP TABLE _checked AS
        WITH judged AS (SELECT *, {bad_field} AS _bad_field, {reason} AS _reason
                        FROM {mapping.time.timed(readable(mapping, staged, fields), "event_time")})
        SELECT file, line, {shown_field} AS bad_field, {source_column} AS bad_column, _reason AS reason,
               {bad_value} AS bad_value,
               CASE WHEN _reason IS NULL THEN trim(user_id) END AS user_id,
               CASE WHEN _reason IS NULL THEN _t_ms END AS event_ms,
               CASE WHEN _reason IS NULL THEN {_event_type_sql(mapping)} END AS event_type,
               CASE WHEN _reason IS NULL THEN nullif(trim(item_id), '') END AS item_id,
               CASE WHEN _reason IS NULL THEN nullif(trim(item_owner), '') END AS item_owner,
               CASE WHEN _reason IS NULL THEN {value} END AS value,
               CASE WHEN _reason IS NULL THEN nullif(trim(session_id), '') END AS session_id,
               CASE WHEN _reason IS NULL THEN nullif(trim(event_id), '') END AS event_id
        FROM judged"""


def events_sql(mapping: EventMapping) -> str:
    """The loaded events of ``_checked``: first copies only, with the local day and hour (unordered: the
    writer sorts them on content, once)."""
    local = mapping.time.local_timestamp("event_ms")
    return f"""
        SELECT user_id, event_ms, {local}::DATE AS local_day, hour({local})::TINYINT AS local_hour, event_type,
               item_id, item_owner, value, session_id, event_id, file, line
        FROM (SELECT *, row_number() OVER (PARTITION BY {same_event(mapping)} ORDER BY file, line) AS _copy
              FROM _checked WHERE reason IS NULL)
        WHERE _copy = 1"""


def quarantine_sql(mapping: EventMapping) -> str:
    """Every record not loaded: broken rules and later copies, with the file, line, column, value and reason."""
    return f"""
        SELECT file, line, bad_column AS "column", left(bad_value, {SHOWN_VALUE_CHARS}) AS value,
               bad_field || ': ' || reason AS reason
        FROM _checked WHERE reason IS NOT NULL
        UNION ALL
        SELECT file, line, '(line)', first_file || ' line ' || first_line,
               'duplicate: the same event as an earlier record (value: where it is)'
        FROM (SELECT file, line,
                     first_value(file) OVER w AS first_file, first_value(line) OVER w AS first_line,
                     row_number() OVER w AS _copy
              FROM _checked WHERE reason IS NULL
              WINDOW w AS (PARTITION BY {same_event(mapping)} ORDER BY file, line))
        WHERE _copy > 1
        ORDER BY file, line"""


def counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """Staged records and those that broke a rule, from ``_checked``."""
    staged, broken = con.execute("SELECT count(*), count(reason) FROM _checked").fetchone()
    return int(staged), int(broken)
