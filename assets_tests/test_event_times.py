"""The time rules of event logs (``stages/events/sql/times.py``) on hand-computed instants.

New York in 2024: clocks went forward at 02:00 on 10 March (02:00..02:59 does not exist) and back at 02:00
on 3 November (01:00..01:59 happens twice, first at UTC-4, then at UTC-5).
"""

from __future__ import annotations

import duckdb
import pytest

from churn_dagster.stages.events.sql.times import SKIPPED_BY_CLOCK_CHANGE, TimeRule, pattern_problem

NY = TimeRule("iso", "America/New_York")


def _read(rule: TimeRule, value: str | None) -> tuple[str | None, int | None, str | None]:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    reason, ms = con.execute(
        f"SELECT {rule.reason('x')}, CASE WHEN ({rule.reason('x')}) IS NULL THEN {rule.instant_ms('x')} END "
        "FROM (SELECT ?::VARCHAR AS x)", [value]).fetchone()
    local = None if ms is None else str(con.execute(f"SELECT {rule.local_timestamp('?::BIGINT')}", [ms]).fetchone()[0])
    return reason, ms, local


@pytest.mark.parametrize("value, ms, local", [
    # 2024-07-01 00:00 EDT (UTC-4) = 04:00 UTC = 1719806400 s.
    ("2024-07-01", 1_719_806_400_000, "2024-07-01 00:00:00"),
    ("2024-07-01 10:00:00", 1_719_842_400_000, "2024-07-01 10:00:00"),
    ("2024-07-01T10:00", 1_719_842_400_000, "2024-07-01 10:00:00"),
    # An offset wins over the declared zone: 10:00+02:00 = 08:00 UTC = 04:00 in New York.
    ("2024-07-01T10:00:00+02:00", 1_719_820_800_000, "2024-07-01 04:00:00"),
    ("2024-07-01 10:00:00Z", 1_719_828_000_000, "2024-07-01 06:00:00"),
    ("2024-07-01 10:00:00.250-0500", 1_719_846_000_250, "2024-07-01 11:00:00.250000"),
    # The repeated hour is read as its first pass (EDT): 01:30 EDT = 05:30 UTC; 00:30 EDT one hour before.
    ("2024-11-03 01:30:00", 1_730_611_800_000, "2024-11-03 01:30:00"),
    ("2024-11-03 00:30:00", 1_730_608_200_000, "2024-11-03 00:30:00"),
    # After the change: 02:30 EST = 07:30 UTC.
    ("2024-11-03 02:30:00", 1_730_619_000_000, "2024-11-03 02:30:00"),
    # Offsets after a space, and UTC spelled out (as some exports write it): 10:00 UTC = 06:00 in New York.
    ("2024-07-01 10:00:00 +02:00", 1_719_820_800_000, "2024-07-01 04:00:00"),
    ("2024-07-01 10:00:00 UTC", 1_719_828_000_000, "2024-07-01 06:00:00"),
    ("2024-07-01 10:00:00UTC", 1_719_828_000_000, "2024-07-01 06:00:00"),
    ("2024-07-01 10:00:00 Z", 1_719_828_000_000, "2024-07-01 06:00:00"),
])
def test_iso_times_become_utc_instants_and_local_days(value, ms, local):
    assert _read(NY, value) == (None, ms, local)


@pytest.mark.parametrize("value, reason", [
    ("2024-03-10 02:30:00", f"{SKIPPED_BY_CLOCK_CHANGE} in America/New_York"),
    ("2024-02-30", "not a valid calendar time"),
    ("1900-01-01", "outside the years 1990..2100"),
    ("10/03/2024", "not an ISO 8601 time"),
    ("2024-07-01-05", "not an ISO 8601 time"),  # a date with what only looks like an offset
    ("", "empty"),
    (None, "empty"),
])
def test_iso_times_that_are_not_instants_say_why(value, reason):
    found, ms, _ = _read(NY, value)
    assert ms is None and found.startswith(reason)


@pytest.mark.parametrize("rule, value, ms, reason", [
    (TimeRule("epoch_s"), "1700000000", 1_700_000_000_000, None),
    (TimeRule("epoch_s"), "1700000000.25", 1_700_000_000_250, None),
    (TimeRule("epoch_ms"), "1700000000123", 1_700_000_000_123, None),
    # The wrong unit lands outside 1990..2100, and the message suggests the other one.
    (TimeRule("epoch_s"), "1700000000000", None, "outside the years 1990..2100; is it in milliseconds"),
    (TimeRule("epoch_ms"), "1700000000", None, "outside the years 1990..2100; is it in seconds"),
    (TimeRule("epoch_ms"), "99999999999999999999999", None, "outside the years"),
    (TimeRule("epoch_s"), "1e9", None, "not a number of seconds since 1970"),
    (TimeRule("epoch_ms"), "17.5", None, "not a number of milliseconds since 1970"),
])
def test_epoch_times(rule, value, ms, reason):
    found, instant, _ = _read(rule, value)
    assert instant == ms
    assert (found is None) if reason is None else found.startswith(reason)


def test_a_local_day_follows_the_declared_zone():
    # 23:30 UTC on 1 July is 1 July in New York and 2 July in Berlin.
    utc_ms = 1_719_876_600_000
    berlin = TimeRule("iso", "Europe/Berlin")
    con = duckdb.connect()
    days = [str(con.execute(f"SELECT ({r.local_timestamp(str(utc_ms))})::DATE").fetchone()[0]) for r in (NY, berlin)]
    assert days == ["2024-07-01", "2024-07-02"]


def test_an_unknown_time_format_is_refused():
    with pytest.raises(ValueError, match="time_format must be one of"):
        TimeRule("unix")
    assert pattern_problem("%Y-%m-%d %Q") == "Unrecognized format for strftime/strptime: %Q"
    assert pattern_problem("%m/%d/%Y %H:%M") is None


US_MINUTES = TimeRule("%m/%d/%Y %H:%M", "America/New_York")


@pytest.mark.parametrize("rule, value, ms, local, reason", [
    # 1 Dec 2010 08:26 EST (UTC-5) = 13:26 UTC; 2010-12-01 00:00 UTC = 1,291,161,600 s, + 48,360 s.
    (US_MINUTES, "12/1/2010 8:26", 1_291_209_960_000, "2010-12-01 08:26:00", None),
    (US_MINUTES, "12/01/2010 08:26", 1_291_209_960_000, "2010-12-01 08:26:00", None),
    # The hour skipped in spring, the repeated hour of autumn read as its first pass (01:30 EDT = 05:30 UTC).
    (US_MINUTES, "3/10/2024 2:30", None, None, f"{SKIPPED_BY_CLOCK_CHANGE} in America/New_York"),
    (US_MINUTES, "11/3/2024 1:30", 1_730_611_800_000, "2024-11-03 01:30:00", None),
    (US_MINUTES, "2010-12-01 08:26", None, None, "does not match time_format %m/%d/%Y %H:%M"),
    (US_MINUTES, "13/1/2010 8:26", None, None, "does not match time_format"),
    (US_MINUTES, "12/1/2010", None, None, "does not match time_format"),
    (US_MINUTES, "1/1/1900 0:00", None, None, "outside the years 1990..2100"),
    # A date as a number: 2015-01-01 00:00 UTC = 1,420,070,400 s.
    (TimeRule("%Y%m%d"), "20150101", 1_420_070_400_000, "2015-01-01 00:00:00", None),
    # A zone in the value wins over the declared one: 2019-10-01 00:00 UTC = 1,569,888,000 s.
    (TimeRule("%Y-%m-%d %H:%M:%S %Z", "America/New_York"), "2019-10-01 00:00:00 UTC", 1_569_888_000_000,
     "2019-09-30 20:00:00", None),
    (TimeRule("%d.%m.%Y %H:%M %z", "America/New_York"), "01.07.2024 10:00 +0200", 1_719_820_800_000,
     "2024-07-01 04:00:00", None),
])
def test_strptime_patterns(rule, value, ms, local, reason):
    found, instant, shown = _read(rule, value)
    assert (instant, shown) == (ms, local)
    assert (found is None) if reason is None else found.startswith(reason)
