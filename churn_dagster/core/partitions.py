"""Partitions: one per calendar day for raw data, one per cohort start day for everything per cohort.

Built once per set of settings (:class:`Partitions`, from ``Settings.calendar`` and the training window) and
passed to every asset factory. The mappings make the lineage tell the truth: a cohort's sessions read its 14
observation days, its labels read the 7 label days, and its membership reads every day up to its start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import dagster as dg

from churn_dagster.domain.calendar import Calendar
from churn_dagster.settings import Settings

TIMEZONE = "Asia/Shanghai"


def daily(first: date, last: date) -> dg.DailyPartitionsDefinition:
    """One partition per day from ``first`` to ``last``, both included."""
    return dg.DailyPartitionsDefinition(start_date=first.isoformat(), end_date=(last + timedelta(days=1)).isoformat(),
                                        timezone=TIMEZONE)


def window(start: int, end: int, before_first_day: bool = False) -> dg.TimeWindowPartitionMapping:
    """The upstream partitions from ``start`` to ``end`` days after the downstream one (``before_first_day``:
    a window may begin before the first partition)."""
    return dg.TimeWindowPartitionMapping(start_offset=start, end_offset=end,
                                         allow_nonexistent_upstream_partitions=before_first_day)


@dataclass(frozen=True)
class Partitions:
    """The partitions and partition mappings that ``settings`` make of the data graph."""
    settings: Settings
    calendar: Calendar = field(init=False)
    day_partitions: dg.DailyPartitionsDefinition = field(init=False)
    cohort_partitions: dg.DailyPartitionsDefinition = field(init=False)

    def __post_init__(self) -> None:
        calendar = self.settings.calendar
        object.__setattr__(self, "calendar", calendar)
        object.__setattr__(self, "day_partitions", daily(calendar.first_day, calendar.last_day))
        object.__setattr__(self, "cohort_partitions", daily(calendar.first_day, calendar.last_labelled_cohort))

    @property
    def observation_days(self) -> dg.TimeWindowPartitionMapping:
        """A cohort's observation window, from its first day."""
        return window(0, self.calendar.observation_days - 1)

    @property
    def label_days(self) -> dg.TimeWindowPartitionMapping:
        """A cohort's label period, right after its observation window."""
        c = self.calendar
        return window(c.observation_days, c.observation_days + c.label_days - 1)

    @property
    def days_until_cohort(self) -> dg.TimeWindowPartitionMapping:
        """Every day of the log up to a cohort's first day (who was seen before it)."""
        return window(-self.calendar.num_days, 0, True)

    @property
    def training_window(self) -> dg.TimeWindowPartitionMapping:
        """A model partition (cohort X) trains on the labelled cohorts X-N+1 .. X: the last N cohorts whose label
        period has ended when X's has (N = CHURN_TRAINING_COHORTS, default 7); the lineage shows exactly those."""
        return window(-(self.settings.training_cohorts - 1), 0, True)

    @property
    def scoring_observation_days(self) -> dg.TimeWindowPartitionMapping:
        """The scoring partition of cohort X scores the users first seen on X + label days, whose observation
        window ends on the day X's label period ends: the newest window as of that day."""
        c = self.calendar
        return window(c.label_days, c.label_days + c.observation_days - 1)

    @property
    def scoring_membership_days(self) -> dg.TimeWindowPartitionMapping:
        return window(-self.calendar.num_days, self.calendar.label_days, True)

    @property
    def model_inputs_window(self) -> dg.TimeWindowPartitionMapping:
        """What a churn model partition reads: its training window and the out-of-time protocol's earlier
        cohorts, X-L-N+1 .. X (contiguous: with N < L the lineage also names the L-N cohorts between the two,
        unread)."""
        return window(-(self.calendar.label_days + self.settings.training_cohorts - 1), 0, True)

    def training_cohorts(self, cohort: date) -> list[date]:
        """The cohort start days model partition ``cohort`` trains on (oldest first, within the calendar)."""
        first = max(self.calendar.first_day, cohort - timedelta(days=self.settings.training_cohorts - 1))
        return [first + timedelta(days=i) for i in range((cohort - first).days + 1)]

    def out_of_time_cohorts(self, cohort: date) -> list[date]:
        """The cohorts the out-of-time protocol of model partition ``cohort`` trains on before it tests on
        ``cohort``: the last N whose label periods had closed on the day ``cohort``'s observation window closed,
        so the test sees what a daily retrain knew on the day it scored those users (X-L-N+1 .. X-L)."""
        return self.calendar.cohorts_labelled_by(self.calendar.observation_closed(cohort),
                                                 self.settings.training_cohorts)

    def scored_cohort(self, cohort: date) -> date:
        """The cohort whose observation window scoring partition ``cohort`` scores."""
        return cohort + timedelta(days=self.calendar.label_days)

    def days_read(self, dts: range) -> dg.MetadataValue:
        """The day numbers ``dts`` as the calendar days a partition read, for its metadata."""
        return dg.MetadataValue.text(f"{self.calendar.day(dts[0])} .. {self.calendar.day(dts[-1])} ({len(dts)} days)")
