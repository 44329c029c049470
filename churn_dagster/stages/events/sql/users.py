"""The optional users table of an event log: one row per user with a signup time and attributes fixed at
signup (country, plan, age band, acquisition channel), checked and typed like the events.

A row is quarantined for an empty user id, a signup time that is not one (the events' time rule), or a
user id seen before (the first row is kept). An attribute becomes a numeric feature when every non-empty
value of it is a number, else one indicator per frequent value (the ``MAX_CATEGORIES`` most frequent over
the whole table, which holds no label). Attributes must not change after signup: a plan upgraded during
the label period would leak it, and nothing here can tell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from churn_dagster.stages.events.sql.times import TimeRule, sql_text

MAX_CATEGORIES = 10


@dataclass(frozen=True)
class UsersMapping:
    user_id: str
    signup_time: str | None = None
    time: TimeRule = TimeRule()
    attributes: tuple[str, ...] = ()

    def staged_columns(self) -> dict[str, str | None]:
        """Staged field -> source column: the id, the signup time and ``a_<k>`` for the k-th attribute."""
        return {"user_id": self.user_id, "signup_time": self.signup_time,
                **{f"a_{k}": a for k, a in enumerate(self.attributes)}}

    def problems(self, columns: list[str]) -> list[str]:
        named = {"users.user_id": self.user_id, "users.signup_time": self.signup_time,
                 **{f"users.attributes[{k}]": a for k, a in enumerate(self.attributes)}}
        return [f"{key}: column {column!r} is not in the users table (its columns: {', '.join(columns)})"
                for key, column in named.items() if column and column not in columns]


def checked_sql(mapping: UsersMapping, staged: str) -> str:
    """``_users_checked``: every staged row with its verdict and typed values."""
    time_reason = mapping.time.reason("signup_time")
    attributes = "".join(f", a_{k}" for k in range(len(mapping.attributes)))
    signup_bad = (f"WHEN signup_time IS NOT NULL AND trim(signup_time) <> '' AND ({time_reason}) IS NOT NULL "
                  f"THEN 'signup_time: ' || ({time_reason})") if mapping.signup_time else ""
    column = sql_text(mapping.signup_time or "")
    return f"""
        CREATE OR REPLACE TEMP TABLE _users_checked AS
        WITH judged AS (
            SELECT *, CASE WHEN problem IS NOT NULL THEN '(line): ' || problem
                           WHEN user_id IS NULL OR trim(user_id) = '' THEN 'user_id: empty'
                           {signup_bad} END AS reason,
                      row_number() OVER (PARTITION BY trim(user_id) ORDER BY file, line) AS copy,
                      first_value(line) OVER (PARTITION BY trim(user_id) ORDER BY file, line) AS first_line
            FROM {staged})
        SELECT file, line, trim(user_id) AS user_id,
               CASE WHEN reason IS NULL AND copy > 1 THEN 'duplicate: user id already on line ' || first_line
                    ELSE reason END AS reason,
               CASE WHEN starts_with(reason, 'signup_time') THEN {column} WHEN starts_with(reason, '(line)')
                    THEN '(line)' ELSE {sql_text(mapping.user_id)} END AS bad_column,
               CASE WHEN starts_with(reason, 'signup_time') THEN signup_time WHEN copy > 1 THEN user_id END AS bad_value,
               CASE WHEN reason IS NULL AND nullif(trim(signup_time), '') IS NOT NULL
                    THEN {mapping.time.instant_ms("signup_time")} END AS signup_ms{attributes}
        FROM judged"""


def attribute_features(names: tuple[str, ...], numeric: dict[int, bool], categories: dict[int, list[str]]
                       ) -> list[tuple[str, str]]:
    """(feature name, SQL over ``u``, the users row) of every attribute feature."""
    found = []
    for k, name in enumerate(names):
        stem = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:30] or f"attribute_{k}"
        if numeric[k]:
            found.append((f"user_{stem}", f"try_cast(nullif(trim(u.a_{k}), '') AS DOUBLE)"))
            continue
        for j, value in enumerate(categories[k]):
            label = re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")[:20] or str(j)
            found.append((f"user_{stem}_{label}_{j}", f"(trim(u.a_{k}) = {sql_text(value)})::DOUBLE"))
    return found
