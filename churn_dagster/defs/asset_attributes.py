"""The Dagster attributes that every partitioned data asset of a kind shares, stated once.

A daily asset holds one partition per day of the log; a cohort asset one per cohort start day, is built by a
single run whatever the number of partitions (a backfill of 10 cohorts is one pass over the days it reads),
and is due once every day it reads has landed (:data:`churn_dagster.defs.automation.conditions.cohort_ready`).
"""

import dagster as dg

from churn_dagster.defs.automation.conditions import cohort_ready
from churn_dagster.defs.constants import OWNERS
from churn_dagster.defs.partitions import cohort_partitions, day_partitions

DUCKDB_PARQUET = frozenset({"duckdb", "parquet"})


def daily_asset(group: str, code_version: str, kinds=DUCKDB_PARQUET) -> dict:
    return dict(group_name=group, kinds=set(kinds), owners=OWNERS, code_version=code_version,
                partitions_def=day_partitions, backfill_policy=dg.BackfillPolicy.single_run())


def cohort_asset(group: str, code_version: str, kinds=DUCKDB_PARQUET) -> dict:
    return dict(group_name=group, kinds=set(kinds), owners=OWNERS, code_version=code_version,
                partitions_def=cohort_partitions, backfill_policy=dg.BackfillPolicy.single_run(),
                automation_condition=cohort_ready)
