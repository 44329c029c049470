"""Security hygiene: paths and partition keys reach SQL only as parameters, and no secret is committed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import CALENDAR, Imp, tid, write_impressions, write_snapshots
from pipeline_helpers import ingest_folder

from churn_dagster.domain.calendar import parse_day
from churn_dagster.stages.cohorts.sql import cohorts
from churn_dagster.stages.features.sql import sessions, window
from churn_dagster.storage.duck import DuckSettings, connect
from churn_dagster.storage.lake import Lake

# The fixture's users and cards, as IDs of the published grammar (see conftest.tid).
U1 = tid("U1")

REPO = Path(__file__).resolve().parents[1]


def test_paths_with_quotes_and_spaces_are_parameters(tmp_path):
    """A folder named like an injection attempt is just a folder: every path is a bound parameter."""
    odd = tmp_path / "it's a lake'); DROP TABLE x; --"
    source = odd / "source"
    write_impressions(source, [Imp(U1, "2019-11-01 10:00:00"), Imp(U1, "2019-11-01 10:05:00", 2)])
    write_snapshots(source, [U1])
    lake = Lake(odd / "data")
    con = connect(DuckSettings(memory_limit="1GB", threads=1, temp_directory=odd / "tmp"))
    results = ingest_folder(con, source, lake)
    assert results["impression_data"].total_loaded == 2
    for dt in range(1, 31):
        cohorts.build_user_day_activity(con, lake, CALENDAR.day(dt))
    assert cohorts.build_cohort_users(con, lake, CALENDAR, [CALENDAR.day(1)]) == {CALENDAR.day(1): 1}
    window.build_window_impressions(con, lake, CALENDAR, [CALENDAR.day(1)])
    assert sessions.build_sessions(con, lake, CALENDAR, [CALENDAR.day(1)], 30) == {CALENDAR.day(1): 1}


@pytest.mark.parametrize("key", ["2019-11-01'; DROP TABLE runs; --", "2019-11-01 OR 1=1", "../../etc"])
def test_partition_keys_must_be_dates(key):
    with pytest.raises(ValueError):
        parse_day(key)


def test_no_secret_is_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    patterns = [re.compile(p) for p in (r"-----BEGIN [A-Z ]*PRIVATE KEY-----", r"AKIA[0-9A-Z]{16}",
                                         r"(?i)(api[_-]?key|secret[_-]?key)\s*[:=]\s*['\"][^'\"$]{12,}")]
    offenders = [name for name in tracked if (REPO / name).is_file() and (REPO / name).stat().st_size < 2_000_000
                 and any(p.search((REPO / name).read_text(errors="ignore")) for p in patterns)]
    assert offenders == [] and ".env" not in tracked
