"""The project follows Dagster's own layout: ``dg check defs`` validates it and ``dg list defs`` lists the same
assets, checks, jobs, schedules and sensors as ``build_definitions()`` builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from churn_dagster.definitions import build_definitions

REPO = Path(__file__).resolve().parents[1]
DG = Path(sys.executable).with_name("dg")


def _dg(*args: str, home: Path) -> subprocess.CompletedProcess:
    if not DG.exists():
        pytest.skip(f"{DG} is not installed (dagster-dg-cli, in the test extra)")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return subprocess.run([str(DG), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_dg_check_defs_loads_the_code_location(tmp_path):
    done = _dg("check", "defs", home=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All definitions loaded successfully." in done.stdout + done.stderr


def test_dg_list_defs_lists_what_build_definitions_builds(tmp_path):
    done = _dg("list", "defs", "--json", home=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = json.loads(done.stdout)
    built = build_definitions()
    graph = built.resolve_asset_graph()
    assert sorted(a["asset_key"] for a in listed["assets"]) == sorted(
        k.to_user_string() for k in graph.get_all_asset_keys())
    assert len(listed["assets"]) == 61
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert {(c["asset_key"], c["name"]) for c in listed["asset_checks"]} == checks and len(checks) == 112
    assert sorted(j["name"] for j in listed["jobs"]) == sorted(j.name for j in built.jobs)
    assert [s["name"] for s in listed["schedules"]] == ["daily_retrain_schedule"]
    assert sorted(s["name"] for s in listed["sensors"]) == ["cohort_automation", "landing_sensor"]
    assert sorted(r["name"] for r in listed["resources"]) == ["features", "lake", "mlflow", "source"]
