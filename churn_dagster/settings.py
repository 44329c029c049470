"""Every ``CHURN_*`` setting (README "Configuration"), parsed and checked in one place, into one object.

:func:`settings_from_env` reads a mapping of variables (the process environment by default) once, when the
definitions are built; the :class:`Settings` it returns is passed down to everything that needs a setting
(the partitions, the resources, the jobs' executor, the training steps), so nothing reads the environment at
import time and one process can build the definitions twice with two settings. ``dagster dev``,
``dagster asset materialize`` and the ``churn-dagster`` CLI therefore agree on them and reject the same bad
values: a bad value fails here, before any run starts, with one line per variable that names it and its
allowed range. No Dagster here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from churn_dagster.domain.calendar import FIRST_DAY, LABEL_DAYS, LAST_DAY, OBSERVATION_DAYS, Calendar
from churn_dagster.errors import UserError

# The DIGMN trend tasks compare two periods of this many days each (half of a shorter log each; the first at
# most the observation window).
TREND_PERIOD_DAYS = 14
# The NCM case study (2021) predicts the CTR of days 11-30 from days 1-10 (a third and the rest of a shorter log).
CASE_STUDY_FEATURE_DAYS, CASE_STUDY_TARGET_DAYS = 10, 20

# A gap of a day or more would merge a user's consecutive days into one "session".
MAX_SESSION_GAP_MINUTES = 1440
# DuckDB's own floor is far lower; this one keeps a slip such as 6MB (for 6GB) from turning a run into hours of
# spilling to disk.
MIN_DUCKDB_MEMORY = 256 * 1000**2
# The units DuckDB's memory_limit accepts (it also takes the bare first letter, K, M, G or T, as 1000-based).
MEMORY_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
                "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
                "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
# Variables a step container receives, so that it loads the same definitions, reaches the same PostgreSQL and
# MLflow, and reads and writes the same paths.
FORWARDED_PREFIXES = ("CHURN_", "DAGSTER_PG_", "MLFLOW_")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)", re.IGNORECASE)


class SettingsError(UserError, ValueError):
    """One or more settings (environment variables or command-line options) outside their allowed range."""

    exit_code = 2

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def memory_bytes(text: str) -> int:
    """The size ``text`` (``6GB``, ``512MB``, ``1.5GiB``) in bytes, as DuckDB reads it; ValueError otherwise."""
    match = _SIZE.fullmatch(text.strip())
    if match is None or match.group(2).lower() not in MEMORY_UNITS:
        raise ValueError(f"not a size: {text!r}")
    return int(float(match.group(1)) * MEMORY_UNITS[match.group(2).lower()])


def machine_memory_bytes() -> int:
    """Physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def cpu_count() -> int:
    return os.cpu_count() or 2


@dataclass(frozen=True)
class Settings:
    """The validated settings; defaults are those of the README's "Configuration" table."""

    data_dir: Path
    source_dir: Path
    first_day: date = FIRST_DAY
    last_day: date = LAST_DAY
    observation_days: int = OBSERVATION_DAYS
    label_days: int = LABEL_DAYS
    session_gap_minutes: float = 30.0
    max_sessions: int = 192
    split_seed: int = 42
    duckdb_memory_limit: str = "6GB"
    duckdb_threads: int = cpu_count()
    torch_threads: int = 1
    training_cohorts: int = 7
    max_epochs: int | None = None
    use_leaky_columns: bool = False
    use_content_stats: bool = True
    trend_first_days: int = TREND_PERIOD_DAYS
    trend_second_days: int = TREND_PERIOD_DAYS
    case_study_feature_days: int = CASE_STUDY_FEATURE_DAYS
    case_study_target_days: int = CASE_STUDY_TARGET_DAYS
    min_validation_positives: int = 30
    min_validation_negatives: int = 30
    promotion_margin: float = 0.02
    training_retry_delay_seconds: float = 60.0
    mlflow_tracking_uri: str | None = None  # None: a SQLite store under the data folder
    mlflow_artifact_root: str | None = None
    mlflow_ui_url: str = "http://127.0.0.1:5000"
    step_image: str | None = None  # set: every step runs in a container of this image (core/step_containers.py)
    step_network: str | None = None
    step_volumes: tuple[str, ...] = ()
    # The variables that were set where these settings were read: the resources name each as a ``dg.EnvVar``,
    # and step containers receive the forwarded ones (FORWARDED_PREFIXES) from the run worker.
    set_variables: frozenset[str] = frozenset()
    forwarded: tuple[str, ...] = ()

    @property
    def calendar(self) -> Calendar:
        return Calendar(self.first_day, self.last_day, self.observation_days, self.label_days)


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if value < low or (high is not None and value > high):
            raise ValueError(value)
        return value

    return parse


def _switch(raw: str) -> bool:
    if raw.lower() not in ("0", "1", "true", "false"):
        raise ValueError(raw)
    return raw.lower() in ("1", "true")


def _gap_minutes(raw: str) -> float:
    value = float(raw)
    if not 0 < value <= MAX_SESSION_GAP_MINUTES:  # NaN fails this too
        raise ValueError(value)
    return value


def _margin(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < 0.5:  # NaN fails this too
        raise ValueError(value)
    return value


def _seconds(raw: str) -> float:
    value = float(raw)
    if not value >= 0:  # NaN fails this too
        raise ValueError(value)
    return value


def step_volumes(spec: str) -> tuple[str, ...]:
    """``CHURN_STEP_VOLUMES`` as Docker volume specs: comma-separated ``source:target[:mode]``, each source
    a named volume or an absolute host path (a relative one would resolve against no known folder)."""
    volumes = tuple(v.strip() for v in spec.split(",") if v.strip())
    for volume in volumes:
        source, _, target = volume.partition(":")
        if not target.startswith("/") or ("/" in source and not source.startswith("/")):
            raise ValueError(volume)
    return volumes


def _memory_limit(raw: str) -> str:
    if not MIN_DUCKDB_MEMORY <= memory_bytes(raw) <= machine_memory_bytes():
        raise ValueError(raw)
    return raw


def _variables() -> dict[str, tuple[str, Callable[[str], object], str]]:
    """Variable -> (field, parser raising ValueError, the allowed values in words)."""
    ram_gb = machine_memory_bytes() / 1000**3
    return {
        "CHURN_FIRST_DAY": ("first_day", date.fromisoformat, "an ISO date such as 2019-11-01"),
        "CHURN_LAST_DAY": ("last_day", date.fromisoformat, "an ISO date such as 2019-11-30"),
        "CHURN_OBSERVATION_DAYS": ("observation_days", _whole(1), "a whole number of days, at least 1"),
        "CHURN_LABEL_DAYS": ("label_days", _whole(1), "a whole number of days, at least 1"),
        "CHURN_SESSION_GAP_MINUTES": ("session_gap_minutes", _gap_minutes,
                                      f"a number of minutes above 0 and at most {MAX_SESSION_GAP_MINUTES}"),
        "CHURN_MAX_SESSIONS": ("max_sessions", _whole(1), "a whole number, at least 1"),
        "CHURN_SPLIT_SEED": ("split_seed", int, "a whole number"),
        "CHURN_DUCKDB_MEMORY_LIMIT": ("duckdb_memory_limit", _memory_limit,
                                      (f"a size such as 6GB or 512MB (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), "
                                       f"from 256MB to this machine's {ram_gb:.1f}GB of memory")),
        "CHURN_DUCKDB_THREADS": ("duckdb_threads", _whole(1, cpu_count()),
                                 f"a whole number from 1 to {cpu_count()} (the CPUs of this machine)"),
        "CHURN_TORCH_THREADS": ("torch_threads", _whole(1, cpu_count()),
                                f"a whole number from 1 to {cpu_count()} (the CPUs of this machine)"),
        "CHURN_TRAINING_COHORTS": ("training_cohorts", _whole(1), "a whole number of cohorts, at least 1"),
        "CHURN_MAX_EPOCHS": ("max_epochs", _whole(1), "a whole number of epochs, at least 1, or unset"),
        "CHURN_USE_LEAKY_COLUMNS": ("use_leaky_columns", _switch, "0 or 1 (true or false)"),
        "CHURN_TREND_FIRST_DAYS": ("trend_first_days", _whole(1), "a whole number of days, at least 1"),
        "CHURN_TREND_SECOND_DAYS": ("trend_second_days", _whole(1), "a whole number of days, at least 1"),
        "CHURN_USE_CONTENT_STATS": ("use_content_stats", _switch, "0 or 1 (true or false)"),
        "CHURN_CASE_STUDY_FEATURE_DAYS": ("case_study_feature_days", _whole(1), "a whole number of days, at least 1"),
        "CHURN_CASE_STUDY_TARGET_DAYS": ("case_study_target_days", _whole(1), "a whole number of days, at least 1"),
        "CHURN_MIN_VALIDATION_POSITIVES": ("min_validation_positives", _whole(1),
                                           "a whole number of validation users, at least 1"),
        "CHURN_MIN_VALIDATION_NEGATIVES": ("min_validation_negatives", _whole(1),
                                           "a whole number of validation users, at least 1"),
        "CHURN_PROMOTION_MARGIN": ("promotion_margin", _margin, "a number from 0 to below 0.5 (AUC or F1 points)"),
        "CHURN_TRAINING_RETRY_DELAY_SECONDS": ("training_retry_delay_seconds", _seconds,
                                               "a number of seconds, 0 or more"),
        "MLFLOW_TRACKING_URI": ("mlflow_tracking_uri", str, "an MLflow tracking URI"),
        "CHURN_MLFLOW_ARTIFACT_ROOT": ("mlflow_artifact_root", str, "a folder or URI for new experiments' artifacts"),
        "CHURN_MLFLOW_UI_URL": ("mlflow_ui_url", str, "the base URL of the MLflow UI"),
        "CHURN_STEP_IMAGE": ("step_image", str, "a container image"),
        "CHURN_STEP_NETWORK": ("step_network", str, "a Docker network"),
        "CHURN_STEP_VOLUMES": ("step_volumes", step_volumes,
                               "comma-separated 'volume_name:/path' or '/host/path:/path[:ro]' entries"),
    }


# Variables that were renamed: setting the old name is an error that names the new one, not silently ignored.
RENAMED = {"CHURN_USE_FOLLOW_COUNT": ("CHURN_USE_LEAKY_COLUMNS", "which switches the follow count on together with "
                                     "the other snapshot columns measured after the log")}

CALENDAR_FIELDS = ("first_day", "last_day", "observation_days", "label_days", "trend_first_days", "trend_second_days")


def _calendar_problems(values: dict) -> list[str]:
    """The checks that involve two variables, on values that parsed (or their defaults)."""
    first, last = values.get("first_day", FIRST_DAY), values.get("last_day", LAST_DAY)
    if first > last:
        return [f"CHURN_FIRST_DAY ({first}) must not be after CHURN_LAST_DAY ({last})"]
    observation, label = values.get("observation_days", OBSERVATION_DAYS), values.get("label_days", LABEL_DAYS)
    days = (last - first).days + 1
    problems = []
    if observation + label > days:
        problems.append(f"CHURN_OBSERVATION_DAYS + CHURN_LABEL_DAYS ({observation} + {label}) must fit in the {days} "
                        f"days from CHURN_FIRST_DAY ({first}) to CHURN_LAST_DAY ({last})")
    first_period, second_period = values["trend_first_days"], values["trend_second_days"]
    if first_period + second_period > days:
        problems.append(f"CHURN_TREND_FIRST_DAYS + CHURN_TREND_SECOND_DAYS ({first_period} + {second_period}) must "
                        f"fit in the {days} days from CHURN_FIRST_DAY ({first}) to CHURN_LAST_DAY ({last})")
    if first_period > observation:  # period 1 is the observation window or its first days: trend_inputs.py
        problems.append(f"CHURN_TREND_FIRST_DAYS ({first_period}) must not exceed CHURN_OBSERVATION_DAYS "
                        f"({observation}): the first trend period is the observation window or its first days, "
                        f"from 1 to {observation} days")
    return problems


def _case_study_problems(values: dict, days: int, failed: set[str]) -> list[str]:
    """Default the case study's windows (10 + 20 days, or a third and the rest of a shorter log; 20 target days
    after a feature window that was set) and check that they fit in the log."""
    if failed & {"case_study_feature_days", "case_study_target_days"}:
        return []
    feature = values.setdefault("case_study_feature_days",
                                CASE_STUDY_FEATURE_DAYS if days >= CASE_STUDY_FEATURE_DAYS + CASE_STUDY_TARGET_DAYS
                                else max(1, days // 3))
    target = values.setdefault("case_study_target_days", max(1, min(CASE_STUDY_TARGET_DAYS, days - feature)))
    if feature + target <= days:
        return []
    return [f"CHURN_CASE_STUDY_FEATURE_DAYS + CHURN_CASE_STUDY_TARGET_DAYS ({feature} + {target}) must fit in the "
            f"{days} days of the log: feature days from 1 to {days - 1}, target days from 1 to {days} minus those"]


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check every variable of ``environ`` (default: the process environment); an unset or empty
    variable takes its default. Raises :class:`SettingsError` naming every bad variable at once."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    problems, failed = [], set()
    for old, (new, what) in RENAMED.items():
        if environ.get(old, "").strip():
            problems.append(f"{old} is no longer read: set {new} (0 or 1) instead, {what}")
    for name, (field, parse, allowed) in _variables().items():
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        try:
            values[field] = parse(raw)
        except ValueError:
            problems.append(f"{name}={raw!r} is not allowed: expected {allowed}")
            failed.add(field)
    if not failed.intersection(CALENDAR_FIELDS):
        # The trend periods default to 14 + 14 days, or half of a shorter log each; the first never outlasts the
        # observation window, whose days its inputs are.
        days = (values.get("last_day", LAST_DAY) - values.get("first_day", FIRST_DAY)).days + 1
        half = max(1, min(TREND_PERIOD_DAYS, days // 2))
        values.setdefault("trend_first_days", min(half, values.get("observation_days", OBSERVATION_DAYS)))
        values.setdefault("trend_second_days", half)
        problems += _calendar_problems(values)
        if days >= 1:  # a first day after the last is the one problem of the calendar; no window can fit it
            problems += _case_study_problems(values, days, failed)
    if values.get("step_image") and not (values.get("step_network") and values.get("step_volumes")):
        problems.append("CHURN_STEP_IMAGE is set, so every step runs in a container: set CHURN_STEP_NETWORK (the "
                        "compose network) and CHURN_STEP_VOLUMES (at least the data volume, e.g. "
                        "churn_dagster_data:/data) as well")
    if problems:
        raise SettingsError(problems)
    data_dir = Path(environ.get("CHURN_DATA_DIR") or "data").resolve()
    source_dir = Path(environ.get("CHURN_SOURCE_DIR") or data_dir / "source")
    # Only the process environment is there again when a run starts: variables of another mapping are values.
    own = environ is os.environ
    set_variables = frozenset(k for k, v in environ.items() if own and k.startswith(("CHURN_", "MLFLOW_")) and v.strip())
    forwarded = tuple(sorted(k for k in environ if k.startswith(FORWARDED_PREFIXES)))
    return Settings(data_dir=data_dir, source_dir=source_dir, set_variables=set_variables, forwarded=forwarded,
                    **values)
