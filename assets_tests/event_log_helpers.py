"""What the event-log component tests share: the one-line configuration error a defs.yaml raises at load."""

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
