"""Session figures by kind of user, to compare the twin with the real head where the calibrated figures agree.

The session figures of :mod:`.calibrate_sessions` pool every session, and heavy users write most of them; the
continuation study reads new users' first weeks, capped per user. This breakdown shows who the sessions belong
to: new users in their first 14 days (first seen in dt 1-10, the days of the labelled cohorts), and users by
their active days in the month. Sessions and uncensored requests follow the same rules as the calibration
(:data:`.calibrate_sessions.GAP_MS`); nothing here is judged against a target (docs/SYNTHETIC.md, "Session
continuation at 30 minutes", puts the head's and the twin's side by side).

Run ``python -m churn_dagster.synth.session_breakdown DIR`` to print them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb

from .calibrate import connect
from .calibrate_sessions import GAP_MS, SESSIONS_SQL

NEW_USER_LAST_FIRST_DT = 10  # the labelled cohorts' first days
WINDOW_DAYS = 14

# Each session with the group it belongs to: "new users" (a session of the first WINDOW_DAYS days of a user
# first seen by NEW_USER_LAST_FIRST_DT) and the user's band of active days; a session can be in both.
_GROUPED = f"""
CREATE OR REPLACE TEMP TABLE _grouped AS
WITH users AS (SELECT user_id, min(dt) AS first_dt, count(DISTINCT dt) AS days, count(*) AS impressions
               FROM impressions GROUP BY user_id),
bands AS (SELECT s.*, CASE WHEN u.days = 1 THEN '1 active day' WHEN u.days <= 3 THEN '2-3 active days'
                           WHEN u.days <= 7 THEN '4-7 active days' ELSE '8+ active days' END AS grp,
                 u.impressions, u.first_dt
          FROM _sessions s JOIN users u USING (user_id))
SELECT * FROM bands
UNION ALL
SELECT * REPLACE ('new users, first {WINDOW_DAYS} days' AS grp) FROM bands
WHERE first_dt <= {NEW_USER_LAST_FIRST_DT} AND start_dt < first_dt + {WINDOW_DAYS}"""

_FIGURES = f"""
WITH s AS (SELECT grp, count(DISTINCT user_id) AS users, count(*) AS sessions, avg(len(times)) AS requests_per_session
           FROM _grouped GROUP BY grp),
imp AS (SELECT grp, median(impressions) AS median_impressions
        FROM (SELECT DISTINCT grp, user_id, impressions FROM _grouped) GROUP BY grp),
r AS (SELECT grp, avg((g.end_ms - q.t >= 600000)::INT) AS continuing_10,
             avg((g.end_ms - q.t >= 1800000)::INT) AS continuing_30
      FROM _grouped g, unnest(g.times) AS q(t)
      WHERE q.t + 1800000 + {GAP_MS} <= (SELECT max(end_ms) FROM _sessions) GROUP BY grp)
SELECT grp, users, sessions, requests_per_session, median_impressions, continuing_10, continuing_30
FROM s JOIN imp USING (grp) LEFT JOIN r USING (grp) ORDER BY grp"""

COLUMNS = ("group", "users", "sessions", "requests per session", "impressions per user, median",
           "requests continuing 10+ minutes", "requests continuing 30+ minutes")


def session_breakdown(con: duckdb.DuckDBPyConnection) -> list[dict[str, object]]:
    """One row per group of the files behind ``con`` (the views of :func:`calibrate.connect`). The median
    impressions count the user's whole month; a group without an uncensored request has None as its shares."""
    con.execute(SESSIONS_SQL)
    con.execute(_GROUPED)
    return [dict(zip(COLUMNS, row)) for row in con.execute(_FIGURES).fetchall()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Session figures of an NCM-format folder by kind of user")
    parser.add_argument("source_dir", type=Path)
    args = parser.parse_args(argv)
    print(" | ".join(COLUMNS))
    for row in session_breakdown(connect(args.source_dir)):
        print(" | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.values()))


if __name__ == "__main__":
    main()
