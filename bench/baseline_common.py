"""What the pandas and Polars baselines share: the columns they read, the rules they compute, and how they
report, so that the two scripts differ only in the library and their results can be compared row by row.

Both compute, for the cohorts of dt 1..N, what the pipeline's cohort_users, label_scores and sessions
compute: first appearance, observation-window sessions split at a gap of 30 minutes or more, and label-period
activity. Each prints ``PHASE name seconds`` lines while it runs and one ``RESULT {json}`` line at the end,
which :func:`bench.rss.run_watched` reads.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

GAP_MS = 30 * 60 * 1000
OBSERVATION_DAYS, LABEL_DAYS = 14, 7
COLUMNS = ["userId", "dt", "impressTime", "impressPosition", "mlogId", "isClick", "isLike", "isShare", "isComment"]
# The outputs, in this column order, so that the two baselines' frames compare directly.
SESSION_COLUMNS = ["userId", "start", "end", "impressions", "clicks", "max_position"]
LABEL_COLUMNS = ["userId", "impressions", "active_days", "clicks", "likes", "shares", "comments", "churned"]


class Phases:
    """Prints the seconds since the previous mark, so a log shows where a baseline spends its time."""

    def __init__(self):
        self.last = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        print(f"PHASE {name} {now - self.last:.2f}", flush=True)
        self.last = now


def main(doc: str, run: Callable[[str, int, Phases], dict]) -> None:
    """The command line of a baseline: ``--source DIR [--cohorts 7]``; prints the RESULT line."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--source", required=True)
    parser.add_argument("--cohorts", type=int, default=7, help="the cohorts of dt 1..N")
    args = parser.parse_args()
    print("RESULT", json.dumps(run(args.source, args.cohorts, Phases())), flush=True)
