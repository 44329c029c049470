"""Settings: the README's defaults, one clear line per bad variable, sizes DuckDB reads the same way, and the
same message when `dagster` itself loads the code location."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from churn_dagster.core.resources import settings_resources
from churn_dagster.domain.calendar import Calendar
from churn_dagster.settings import (
    SettingsError,
    machine_memory_bytes,
    memory_bytes,
    settings_from_env,
)

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_the_readme_table(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = settings_from_env({})
    assert (settings.first_day, settings.last_day) == (date(2019, 11, 1), date(2019, 11, 30))
    assert (settings.observation_days, settings.label_days, settings.session_gap_minutes) == (14, 7, 30.0)
    assert (settings.max_sessions, settings.split_seed, settings.duckdb_memory_limit) == (192, 42, "6GB")
    assert (settings.duckdb_threads, settings.training_cohorts, settings.max_epochs) == (os.cpu_count(), 7, None)
    assert settings.data_dir == tmp_path / "data" and settings.source_dir == tmp_path / "data" / "source"
    assert Calendar() == Calendar(settings.first_day, settings.last_day, settings.observation_days, settings.label_days)


def test_the_calendar_and_the_resources_read_the_same_settings(monkeypatch):
    for name, value in {"CHURN_FIRST_DAY": "2020-01-01", "CHURN_LAST_DAY": "2020-01-25", "CHURN_LABEL_DAYS": "5",
                        "CHURN_SESSION_GAP_MINUTES": "12.5", "CHURN_MAX_SESSIONS": "64", "CHURN_SPLIT_SEED": "-3",
                        "CHURN_DUCKDB_MEMORY_LIMIT": "512MB", "CHURN_DUCKDB_THREADS": "1",
                        "CHURN_SOURCE_DIR": "/srv/landing", "CHURN_USE_CONTENT_STATS": "0"}.items():
        monkeypatch.setenv(name, value)
    settings = settings_from_env()
    assert settings.calendar == Calendar(date(2020, 1, 1), date(2020, 1, 25), 14, 5)
    resources = settings_resources(settings)
    # Set variables reach the resources as dg.EnvVar references, which the UI names and runs resolve.
    assert resources["lake"].duckdb_memory_limit == dg.EnvVar("CHURN_DUCKDB_MEMORY_LIMIT")
    assert resources["source"].directory == dg.EnvVar("CHURN_SOURCE_DIR")
    with dg.build_resources(resources) as built:
        assert (built.lake.duckdb_memory_limit, built.lake.duckdb_threads) == ("512MB", 1)
        features = built.features
        assert (features.session_gap_minutes, features.max_sessions, features.split_seed) == (12.5, 64, -3)
        assert features.use_content_stats is False
    # Settings read from another mapping than the process environment are plain values: that mapping is not there
    # when a run starts.
    explicit = settings_resources(settings_from_env({"CHURN_DUCKDB_MEMORY_LIMIT": "1GB"}))
    assert explicit["lake"].duckdb_memory_limit == "1GB"


CPUS = os.cpu_count()
BAD = {
    # variable: (value, what the message must say about the allowed values)
    "CHURN_FIRST_DAY": ("1 Nov 2019", "expected an ISO date such as 2019-11-01"),
    "CHURN_LAST_DAY": ("2019-11-31", "expected an ISO date"),
    "CHURN_OBSERVATION_DAYS": ("14.5", "a whole number of days, at least 1"),
    "CHURN_LABEL_DAYS": ("0", "a whole number of days, at least 1"),
    "CHURN_SESSION_GAP_MINUTES": ("0", "above 0 and at most 1440"),
    "CHURN_MAX_SESSIONS": ("-1", "a whole number, at least 1"),
    "CHURN_SPLIT_SEED": ("forty-two", "a whole number"),
    "CHURN_DUCKDB_MEMORY_LIMIT": ("100MB", "from 256MB to this machine's"),
    "CHURN_DUCKDB_THREADS": (str(CPUS + 1), f"a whole number from 1 to {CPUS}"),
    "CHURN_TORCH_THREADS": ("0", f"a whole number from 1 to {CPUS}"),
    "CHURN_TRAINING_COHORTS": ("seven", "a whole number of cohorts, at least 1"),
    "CHURN_MAX_EPOCHS": ("0", "a whole number of epochs, at least 1"),
    "CHURN_TREND_FIRST_DAYS": ("0", "a whole number of days, at least 1"),
    "CHURN_TREND_SECOND_DAYS": ("two weeks", "a whole number of days, at least 1"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_value_is_named_with_its_allowed_range(name):
    value, allowed = BAD[name]
    with pytest.raises(SettingsError) as raised:
        settings_from_env({name: value})
    assert str(raised.value).startswith(f"{name}={value!r} is not allowed: expected ")
    assert allowed in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(("environ", "message"), [
    ({"CHURN_FIRST_DAY": "2019-12-01"}, "CHURN_FIRST_DAY (2019-12-01) must not be after CHURN_LAST_DAY (2019-11-30)"),
    ({"CHURN_LAST_DAY": "2019-11-20"}, "CHURN_OBSERVATION_DAYS + CHURN_LABEL_DAYS (14 + 7) must fit in the 20 days"),
    ({"CHURN_OBSERVATION_DAYS": "20", "CHURN_LABEL_DAYS": "11"}, "(20 + 11) must fit in the 30 days from"),
])
def test_the_windows_must_fit_in_the_log(environ, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        settings_from_env(environ)


def test_every_bad_variable_is_reported_at_once():
    with pytest.raises(SettingsError) as raised:
        settings_from_env({"CHURN_MAX_SESSIONS": "x", "CHURN_SPLIT_SEED": "y", "CHURN_MAX_EPOCHS": "1"})
    assert [p.split("=")[0] for p in raised.value.problems] == ["CHURN_MAX_SESSIONS", "CHURN_SPLIT_SEED"]


@pytest.mark.parametrize("size", ["6GB", "512MB", "1.5GB", "6gb", "6 GB", "2GiB", "300MiB", "4G", "256000KB"])
def test_sizes_are_read_as_duckdb_reads_them(size):
    con = duckdb.connect()

    def duckdb_reads(limit: str) -> str:
        con.execute("SET memory_limit = $m", {"m": limit})
        return con.execute("SELECT current_setting('memory_limit')").fetchone()[0]  # e.g. "5.5 GiB"

    assert duckdb_reads(size) == duckdb_reads(f"{memory_bytes(size)}B")
    assert settings_from_env({"CHURN_DUCKDB_MEMORY_LIMIT": size}).duckdb_memory_limit == size


@pytest.mark.parametrize("size", ["6", "6 gigs", "GB", "-1GB", "80%"])
def test_sizes_without_a_unit_we_know_are_refused(size):
    with pytest.raises(ValueError):
        memory_bytes(size)


def test_more_memory_than_the_machine_has_is_refused():
    too_much = f"{machine_memory_bytes() // 1000**3 + 1}GB"
    with pytest.raises(SettingsError, match="CHURN_DUCKDB_MEMORY_LIMIT"):
        settings_from_env({"CHURN_DUCKDB_MEMORY_LIMIT": too_much})


def test_loading_the_code_location_with_a_bad_value_fails_with_that_message(tmp_path):
    """What `dagster dev` does when it loads the code location, here through `dagster definitions validate`."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "CHURN_MAX_SESSIONS": "lots", "CHURN_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "churn_dagster.definitions"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert "SettingsError: CHURN_MAX_SESSIONS='lots' is not allowed: expected a whole number, at least 1" in output
    assert "ValueError" not in output and "invalid literal" not in output


def test_the_trend_periods_default_to_two_weeks_or_half_a_shorter_log():
    assert (settings_from_env({}).trend_first_days, settings_from_env({}).trend_second_days) == (14, 14)
    short = settings_from_env({"CHURN_LAST_DAY": "2019-11-25"})  # 25 days: 12 + 12
    assert (short.trend_first_days, short.trend_second_days) == (12, 12)
    with pytest.raises(SettingsError, match=r"CHURN_TREND_FIRST_DAYS \+ CHURN_TREND_SECOND_DAYS \(20 \+ 14\) must fit"):
        settings_from_env({"CHURN_TREND_FIRST_DAYS": "20"})


@pytest.mark.parametrize(("environ", "periods"), [
    ({"CHURN_LAST_DAY": "2019-11-21"}, (10, 10)),  # 21 days: half each, inside the 14 observation days
    ({"CHURN_OBSERVATION_DAYS": "21"}, (14, 14)),  # the first period is the window's first two weeks
    ({"CHURN_OBSERVATION_DAYS": "5"}, (5, 14)),  # never longer than the observation window
    ({"CHURN_OBSERVATION_DAYS": "5", "CHURN_TREND_SECOND_DAYS": "3"}, (5, 3)),
    ({"CHURN_TREND_FIRST_DAYS": "14"}, (14, 14)),  # the whole window, as set
])
def test_the_first_trend_period_lies_inside_the_observation_window(environ, periods):
    settings = settings_from_env(environ)
    assert (settings.trend_first_days, settings.trend_second_days) == periods
    assert settings.trend_first_days <= settings.observation_days


@pytest.mark.parametrize(("environ", "first", "observation"), [
    ({"CHURN_TREND_FIRST_DAYS": "15"}, 15, 14),
    ({"CHURN_OBSERVATION_DAYS": "10", "CHURN_TREND_FIRST_DAYS": "12", "CHURN_TREND_SECOND_DAYS": "12"}, 12, 10),
    ({"CHURN_LAST_DAY": "2019-11-21", "CHURN_OBSERVATION_DAYS": "7", "CHURN_TREND_FIRST_DAYS": "8"}, 8, 7),
])
def test_a_first_trend_period_longer_than_the_observation_window_is_one_line(environ, first, observation):
    with pytest.raises(SettingsError) as raised:
        settings_from_env(environ)
    assert str(raised.value) == (
        f"CHURN_TREND_FIRST_DAYS ({first}) must not exceed CHURN_OBSERVATION_DAYS ({observation}): the first trend "
        f"period is the observation window or its first days, from 1 to {observation} days")


def test_every_variable_the_package_reads_is_declared_in_settings():
    """Each ``CHURN_*`` name in the package's source is one that :mod:`churn_dagster.settings` parses (or the two
    folders it reads itself), so no module reads a variable of its own."""
    import re

    from churn_dagster import settings as settings_module

    declared = {*settings_module._variables(), *settings_module.RENAMED, "CHURN_DATA_DIR", "CHURN_SOURCE_DIR"}
    mentioned = {name for path in (REPO / "churn_dagster").rglob("*.py")
                 for name in re.findall(r"\bCHURN_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())}
    assert mentioned - declared == set()
    assert {"CHURN_TRAINING_RETRY_DELAY_SECONDS", "CHURN_STEP_IMAGE", "CHURN_STEP_NETWORK",
            "CHURN_STEP_VOLUMES"} <= declared


def test_no_module_writes_the_environment():
    """Settings are passed down, never handed over through ``os.environ``: no module of the package assigns to
    it (the CLI gives its webserver an environment of its own instead)."""
    import re

    writes = [f"{path.relative_to(REPO)}:{n}" for path in (REPO / "churn_dagster").rglob("*.py")
              for n, line in enumerate(path.read_text().splitlines(), 1)
              if re.search(r"os\.environ(\[[^\]]+\]\s*=[^=]|\.(update|setdefault|pop)\()|os\.putenv", line)]
    assert writes == []
