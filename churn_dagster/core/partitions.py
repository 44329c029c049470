"""Partitions: one per calendar day for raw data, one per cohort start day for everything per cohort.

Defined once from the environment's calendar (``churn_dagster.domain.calendar``) and imported everywhere. The
mappings make the lineage tell the truth: a cohort's sessions read its 14 observation days, its labels
read the 7 label days, and its membership reads every day up to its start.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from churn_dagster.domain.calendar import calendar_from_env
from churn_dagster.settings import settings_from_env

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

# A model partition (cohort X) trains on the labelled cohorts X-N+1 .. X: the last N cohorts whose label
# period has ended when X's has (N = CHURN_TRAINING_COHORTS, default 7); the lineage shows exactly those.
TRAINING_COHORTS = settings_from_env().training_cohorts
training_window = dg.TimeWindowPartitionMapping(
    start_offset=-(TRAINING_COHORTS - 1), end_offset=0, allow_nonexistent_upstream_partitions=True
)
# The scoring partition of cohort X scores the users first seen on X + label_days, whose observation window
# ends on the day X's label period ends (X + observation + label - 1): the newest window as of that day.
scoring_observation_days = dg.TimeWindowPartitionMapping(
    start_offset=CALENDAR.label_days, end_offset=CALENDAR.label_days + CALENDAR.observation_days - 1
)
scoring_membership_days = dg.TimeWindowPartitionMapping(
    start_offset=-CALENDAR.num_days, end_offset=CALENDAR.label_days, allow_nonexistent_upstream_partitions=True
)


def training_cohorts(cohort: date) -> list[date]:
    """The cohort start days model partition ``cohort`` trains on (oldest first, within the calendar)."""
    first = max(CALENDAR.first_day, cohort - timedelta(days=TRAINING_COHORTS - 1))
    return [first + timedelta(days=i) for i in range((cohort - first).days + 1)]


def out_of_time_cohorts(cohort: date) -> list[date]:
    """The cohorts the out-of-time protocol of model partition ``cohort`` trains on before it tests on ``cohort``:
    the last N whose label periods had closed on the day ``cohort``'s observation window closed, so the test
    sees what a daily retrain knew on the day it scored those users (X-L-N+1 .. X-L, L the label days)."""
    return CALENDAR.cohorts_labelled_by(CALENDAR.observation_closed(cohort), TRAINING_COHORTS)


# What a churn model partition reads: its training window and the out-of-time protocol's earlier cohorts,
# X-L-N+1 .. X (contiguous: with N < L the lineage also names the L-N cohorts between the two, unread).
model_inputs_window = dg.TimeWindowPartitionMapping(
    start_offset=-(CALENDAR.label_days + TRAINING_COHORTS - 1), end_offset=0, allow_nonexistent_upstream_partitions=True
)


def scored_cohort(cohort: date) -> date:
    """The cohort whose observation window scoring partition ``cohort`` scores."""
    return cohort + timedelta(days=CALENDAR.label_days)


def days_read(dts: range) -> dg.MetadataValue:
    """The day numbers ``dts`` as the calendar days a partition read, for its metadata."""
    return dg.MetadataValue.text(f"{CALENDAR.day(dts[0])} .. {CALENDAR.day(dts[-1])} ({len(dts)} days)")
