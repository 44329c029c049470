"""The data calendar: which days the log covers and where each cohort's windows fall.

Partition definitions and partition mappings are built with the definitions, so the calendar and window
lengths are settings (``Settings.calendar``, checked in :mod:`churn_dagster.settings`) rather than run config:
every asset and every run must agree on them. ``dt`` is the 1-based day number used by the published files
(dt 1 = ``first_day``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

# The published log: 1-30 Nov 2019, a 14-day observation window and a 7-day label period.
FIRST_DAY = date(2019, 11, 1)
LAST_DAY = date(2019, 11, 30)
OBSERVATION_DAYS = 14
LABEL_DAYS = 7


@dataclass(frozen=True)
class Calendar:
    """Days of the log and the observation/label window lengths (SPEC.md "Cohorts and windows")."""
    first_day: date = FIRST_DAY
    last_day: date = LAST_DAY
    observation_days: int = OBSERVATION_DAYS
    label_days: int = LABEL_DAYS

    def __post_init__(self) -> None:
        if self.last_day < self.first_day:
            raise ValueError(f"last_day {self.last_day} is before first_day {self.first_day}")
        if self.observation_days < 1 or self.label_days < 1:
            raise ValueError("observation_days and label_days must be at least 1")
        if self.last_labelled_cohort < self.first_day:
            raise ValueError(
                f"{self.num_days} days of data cannot hold a {self.observation_days}-day observation window "
                f"followed by a {self.label_days}-day label period"
            )

    @property
    def num_days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def last_labelled_cohort(self) -> date:
        """The last cohort start day whose label period still lies inside the data."""
        return self.last_day - timedelta(days=self.observation_days + self.label_days - 1)

    @property
    def last_observable_cohort(self) -> date:
        """The cohort whose observation window ends on the last day of data (scored, not labelled)."""
        return self.last_day - timedelta(days=self.observation_days - 1)

    def dt(self, day: date) -> int:
        return (day - self.first_day).days + 1

    def day(self, dt: int) -> date:
        return self.first_day + timedelta(days=dt - 1)

    def observation_dts(self, cohort: date) -> range:
        start = self.dt(cohort)
        return range(start, start + self.observation_days)

    def label_dts(self, cohort: date) -> range:
        start = self.dt(cohort) + self.observation_days
        return range(start, start + self.label_days)

    def labels_closed(self, cohort: date) -> date:
        """The last day of ``cohort``'s label period: from then on its labels are known."""
        return cohort + timedelta(days=self.observation_days + self.label_days - 1)

    def observation_closed(self, cohort: date) -> date:
        """The last day of ``cohort``'s observation window: the day its users are scored."""
        return cohort + timedelta(days=self.observation_days - 1)

    def cohorts_labelled_by(self, day: date, n: int) -> list[date]:
        """The latest ``n`` cohorts (oldest first, within the log) whose label periods have closed on ``day``:
        what a model retrained that day can have learned from."""
        last = day - timedelta(days=self.observation_days + self.label_days - 1)
        first = max(self.first_day, last - timedelta(days=n - 1))
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def parse_day(key: str) -> date:
    """A partition key (``2019-11-05``) as a date."""
    return date.fromisoformat(key)
