"""Partitions: one per calendar day for raw data, one per cohort start day for everything per cohort.

Defined once from the environment's calendar (``churn_dagster.calendar``) and imported everywhere. The
mappings make the lineage tell the truth: a cohort's sessions read its 14 observation days, its labels
read the 7 label days, and its membership reads every day up to its start.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from churn_dagster.calendar import calendar_from_env

CALENDAR = calendar_from_env()
TIMEZONE = "Asia/Shanghai"

day_partitions = dg.DailyPartitionsDefinition(
    start_date=CALENDAR.first_day.isoformat(),
    end_date=(CALENDAR.last_day + timedelta(days=1)).isoformat(),
    timezone=TIMEZONE,
)
cohort_partitions = dg.DailyPartitionsDefinition(
    start_date=CALENDAR.first_day.isoformat(),
    end_date=(CALENDAR.last_labelled_cohort + timedelta(days=1)).isoformat(),
    timezone=TIMEZONE,
)

observation_days = dg.TimeWindowPartitionMapping(start_offset=0, end_offset=CALENDAR.observation_days - 1)
label_days = dg.TimeWindowPartitionMapping(
    start_offset=CALENDAR.observation_days,
    end_offset=CALENDAR.observation_days + CALENDAR.label_days - 1,
)
days_until_cohort = dg.TimeWindowPartitionMapping(
    start_offset=-CALENDAR.num_days, end_offset=0, allow_nonexistent_upstream_partitions=True
)
