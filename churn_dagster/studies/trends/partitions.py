"""The trend study's partitions: one per cohort whose two trend periods fit in the log, and the mappings to
the days its labels compare and to the first period, which every trend model input reads alone."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from churn_dagster.core.partitions import CALENDAR, TIMEZONE, training_cohorts
from churn_dagster.settings import settings_from_env
from churn_dagster.studies.trends.sql.trends import TrendSettings, trend_cohorts

# The DIGMN trend tasks compare a user's first period with the next one (CHURN_TREND_FIRST_DAYS and
# CHURN_TREND_SECOND_DAYS, 14 + 14 by default): only the labelled cohorts whose two periods lie inside the
# data have trend labels (dt 1..3 of the 30-day log), and a trend partition reads exactly those days. Every input of
# the trend models reads period 1 alone, the cohort's first TREND_WINDOWS.first_period_days days (the
# observation window or its first days), through trend_first_period.
_settings = settings_from_env()
TREND_WINDOWS = TrendSettings(_settings.trend_first_days, _settings.trend_second_days)
trend_partitions = dg.DailyPartitionsDefinition(
    start_date=CALENDAR.first_day.isoformat(),
    end_date=(trend_cohorts(CALENDAR, TREND_WINDOWS)[-1] + timedelta(days=1)).isoformat(),
    timezone=TIMEZONE,
)
trend_days = dg.TimeWindowPartitionMapping(start_offset=0, end_offset=TREND_WINDOWS.total_days - 1)
trend_first_period = dg.TimeWindowPartitionMapping(start_offset=0, end_offset=TREND_WINDOWS.first_period_days - 1)


def trend_training_cohorts(cohort: date) -> list[date]:
    """The trend cohorts trend partition ``cohort`` fits and trains on (oldest first): its training window
    (``training_window``) restricted to the labellable cohorts."""
    return [c for c in training_cohorts(cohort) if c in trend_cohorts(CALENDAR, TREND_WINDOWS)]
