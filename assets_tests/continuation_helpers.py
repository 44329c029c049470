"""A planted session-continuation signal in the real file format, and the transforms that turn it into tables.

Half the users are keen: most of their sessions are long (12-16 feed requests of 4 cards, 3 minutes apart,
a click on every request whose card's swipe-down list starts a minute later, so the log proves the click
before the next request: 33-45 minutes), the others' mostly short (1-3 single-card requests a minute apart).
So what is known at a request (the cards it returned, the clicks proven so far, the elapsed time, the user's
earlier sessions) predicts whether the session goes on for 10, 20 or 30 more minutes, and a model that learns
nothing scores an AUC near 0.5.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
from conftest import CALENDAR, Imp, tid
from pipeline_helpers import cohorts_from_impressions

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.stages.cohorts.sql import labels
from churn_dagster.stages.features.sql import sessions
from churn_dagster.storage.lake import Lake
from churn_dagster.studies.continuation.sql import examples as continuation
from churn_dagster.studies.continuation.sql.examples import ExampleSampling

COHORT = CALENDAR.day(1)


def swipe_list(*logged: str) -> str:
    """A swipe-down list as published, one entry per local log time ("2019-11-01 10:00:40") in ``logged``."""
    def entry(position: int, local: str) -> str:
        values = {"isZan": "0", "isComment": "0", "mlogId": "HCICJC", "isIntoPersonalHomepage": "0",
                  "mlogViewTime": "4.5", "isShare": "0", "isViewComment": "0", "position": str(position),
                  "logtime": str(Imp("x", local).epoch_ms)}
        return "{" + ", ".join(f"'{k}': '{values[k]}'" for k in fmt.DETAIL_LIST_KEYS) + "}"

    return "[" + ", ".join(entry(k + 2, local) for k, local in enumerate(logged)) + "]"


def planted_impressions(users: int = 240, seed: int = 0) -> list[Imp]:
    rng = random.Random(seed)
    rows = []
    for u in range(users):
        user, keen = tid(f"U{u:04d}"), rng.random() < 0.5
        for day in (1, 2, 3, 5, 8, 11):
            if day > 1 and rng.random() < 0.3:
                continue
            start = datetime(2019, 11, day, rng.randint(7, 21), rng.randint(0, 59))
            long = rng.random() < (0.75 if keen else 0.15)
            n, step, cards = (rng.randint(12, 16), 3, 4) if long else (rng.randint(1, 3), 1, 1)
            for k in range(n):
                at = start + timedelta(minutes=step * k)
                local, swiped = (t.strftime("%Y-%m-%d %H:%M:%S") for t in (at, at + timedelta(minutes=1)))
                rows += [Imp(user, local, pos, click=long and pos == 2, view_time=20.0 if long and pos == 2 else None,
                             detail=swipe_list(swiped) if long and pos == 2 else None) for pos in range(1, cards + 1)]
    return rows


def build_tables(tmp_path: Path, lake: Lake, con: duckdb.DuckDBPyConnection, imps: list[Imp],
                 sampling: ExampleSampling = ExampleSampling()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ingest ``imps``, build the cohort of day 1 with its split and sessions, then the continuation tables;
    return (requests, examples)."""
    cohorts_from_impressions(tmp_path, lake, con, imps, [COHORT])
    labels.build_splits(con, lake, [COHORT], labels.SplitSettings())
    labels.build_labels(con, lake, CALENDAR, [COHORT])
    sessions.build_sessions(con, lake, CALENDAR, [COHORT], gap_minutes=30)
    continuation.build_requests(con, lake, CALENDAR, [COHORT], gap_minutes=30)
    continuation.build_examples(con, lake, [COHORT], sampling)
    return (pd.read_parquet(lake.cohort("continuation_requests", COHORT)),
            pd.read_parquet(lake.cohort("continuation_examples", COHORT)))
