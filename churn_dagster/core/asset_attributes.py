"""The Dagster attributes that every partitioned data asset of a kind shares, stated once.

A daily asset holds one partition per day of the log; a cohort asset one per cohort start day, is built by a
single run whatever the number of partitions (a backfill of 10 cohorts is one pass over the days it reads),
and is due once every day it reads has landed (:data:`churn_dagster.core.conditions.cohort_ready`).
"""

import dagster as dg

from churn_dagster.core.conditions import cohort_ready
from churn_dagster.core.constants import OWNERS
from churn_dagster.core.partitions import Partitions

DUCKDB_PARQUET = frozenset({"duckdb", "parquet"})


def daily_asset(p: Partitions, group: str, code_version: str, kinds=DUCKDB_PARQUET) -> dict:
    return dict(group_name=group, kinds=set(kinds), owners=OWNERS, code_version=code_version,
                partitions_def=p.day_partitions, backfill_policy=dg.BackfillPolicy.single_run())


def cohort_asset(p: Partitions, group: str, code_version: str, kinds=DUCKDB_PARQUET) -> dict:
    return dict(group_name=group, kinds=set(kinds), owners=OWNERS, code_version=code_version,
                partitions_def=p.cohort_partitions, backfill_policy=dg.BackfillPolicy.single_run(),
                automation_condition=cohort_ready)


def model_asset(name: str, group: str, kind: str, code_version: str, sane: str, partitions_def=None,
                extra_checks: tuple[dg.AssetCheckSpec, ...] = ()) -> dict:
    """What every trained-model asset shares, whatever its task: the ``gpu`` pool (one training at a time, on
    the GPU where there is one), the MLflow kind, and a blocking ``model_sane`` check (``sane`` says what it
    checks) that must pass before the champion alias may move."""
    return dict(name=name, group_name=group, kinds={"python", kind, "mlflow"}, owners=OWNERS, pool="gpu",
                code_version=code_version, partitions_def=partitions_def,
                check_specs=[dg.AssetCheckSpec("model_sane", asset=name, blocking=True, description=sane),
                             *extra_checks])


def report_asset(group: str, code_version: str, partitions_def) -> dict:
    """What every report asset shares: Python and MLflow kinds, the owners, its group and partitions."""
    return dict(group_name=group, kinds={"python", "mlflow"}, owners=OWNERS, code_version=code_version,
                partitions_def=partitions_def)
