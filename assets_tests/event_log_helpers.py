"""What the event-log component tests share: the one-line configuration error a defs.yaml raises at load, a
generated clickstream, and the evidence rule loosened for the small logs of tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.event_log_project import load, write_project
from churn_dagster.components.event_log_spec import EventLogConfigError


def config_error(tmp_path: Path, name: str, text: str) -> str:
    """The message of the EventLogConfigError that loading a project with this one defs.yaml raises, found
    through the chain of whatever Dagster wrapped it in."""
    root, package = write_project(tmp_path, {name: text})
    with pytest.raises(Exception) as info:
        load(root, package)
    chain = info.value
    while chain is not None and not isinstance(chain, EventLogConfigError):
        chain = chain.__cause__ or chain.__context__
    assert chain is not None, f"not an EventLogConfigError: {info.value!r}"
    return str(chain)


def generated_clicks(tmp_path_factory, users: int, days: int) -> Path:
    """A generated clickstream (``synth/event_logs.py``, seed 2) in a folder of its own."""
    from churn_dagster.synth.event_logs import LogSpec, generate_log

    path = tmp_path_factory.mktemp("clicks") / "clicks.csv"
    generate_log(LogSpec("clicks", users=users, days=days, seed=2), path)
    return path


def small_log_evidence(monkeypatch) -> None:
    """Register models on 5 validation positives and negatives: the test logs have a few hundred users."""
    monkeypatch.setenv("CHURN_MIN_VALIDATION_POSITIVES", "5")
    monkeypatch.setenv("CHURN_MIN_VALIDATION_NEGATIVES", "5")
