"""The trend study's partitions: one per cohort whose two trend periods fit in the log, and the mappings to
the days its labels compare and to the first period, which every trend model input reads alone.

The DIGMN trend tasks compare a user's first period with the next one (CHURN_TREND_FIRST_DAYS and
CHURN_TREND_SECOND_DAYS, 14 + 14 by default): only the labelled cohorts whose two periods lie inside the data
have trend labels (dt 1..3 of the 30-day log), and a trend partition reads exactly those days. Every input of
the trend models reads period 1 alone, the cohort's first ``windows.first_period_days`` days (the observation
window or its first days), through ``first_period``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import dagster as dg

from churn_dagster.core.partitions import Partitions, daily, window
from churn_dagster.studies.trends.sql.trends import TrendSettings, trend_cohorts


@dataclass(frozen=True)
class TrendPartitions:
    """The trend study's partitions, from the shared ones and the trend period settings."""
    graph: Partitions

    @property
    def windows(self) -> TrendSettings:
        s = self.graph.settings
        return TrendSettings(s.trend_first_days, s.trend_second_days)

    @property
    def cohorts(self) -> list[date]:
        """The labelled cohorts whose two trend periods fit in the log."""
        return trend_cohorts(self.graph.calendar, self.windows)

    @property
    def partitions(self) -> dg.DailyPartitionsDefinition:
        return daily(self.graph.calendar.first_day, self.cohorts[-1])

    @property
    def days(self) -> dg.TimeWindowPartitionMapping:
        """The days a trend partition's labels compare: both periods."""
        return window(0, self.windows.total_days - 1)

    @property
    def first_period(self) -> dg.TimeWindowPartitionMapping:
        return window(0, self.windows.first_period_days - 1)

    def training_cohorts(self, cohort: date) -> list[date]:
        """The trend cohorts trend partition ``cohort`` fits and trains on (oldest first): its training window
        restricted to the labellable cohorts."""
        kept = self.cohorts
        return [c for c in self.graph.training_cohorts(cohort) if c in kept]
