"""Faults: a materialization killed mid-write, materializing twice, a parallel backfill, and an MLflow
server that does not answer."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
from conftest import CALENDAR, resources_for
from local_servers import free_port

from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import LakeResource
from churn_dagster.definitions import build_definitions
from churn_dagster.runs.runner import data_graph_steps, run_steps
from churn_dagster.settings import settings_from_env
from churn_dagster.studies.churn import models as model_assets
from churn_dagster.synth.generator import generate

REPO = Path(__file__).resolve().parents[1]
COHORTS = [CALENDAR.day(dt) for dt in range(1, 8)]


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every visible file under ``folder`` (hidden temp files and version folders skipped; the
    tensor links are followed, so a tensor folder is compared by content)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith("."):
                path = Path(dirpath) / name
                out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def materialize_data_graph(source: Path, root: Path) -> Path:
    with dg.DagsterInstance.ephemeral() as instance:
        run_steps(build_definitions(resources=resources_for(source, root)), instance, data_graph_steps(CALENDAR), echo=lambda _: None)
    return root / "data"


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("faults") / "source"
    generate(folder, users=20_000, seed=13)
    return folder


@pytest.fixture(scope="module")
def reference(source, tmp_path_factory) -> Path:
    return materialize_data_graph(source, tmp_path_factory.mktemp("reference"))


def test_materializing_twice_writes_identical_bytes(source, reference, tmp_path):
    first = digest(reference)
    again = materialize_data_graph(source, tmp_path)
    assert digest(again) == first
    assert materialize_data_graph(source, tmp_path) == again and digest(again) == first  # over the same folder
    assert any(k.startswith("tensors/") for k in first) and any(k.startswith("raw/impression_data/") for k in first)


def _ingest(source: Path, data: Path) -> subprocess.Popen:
    """The daily run (the three daily files' ingest, then the activity) over every day, in its own process."""
    args = [sys.executable, "-m", "bench.graph_run", "--parts", "daily", "--source", str(source), "--data-dir", str(data),
            "--memory-limit", "1GB"]
    return subprocess.Popen(args, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_mid_write_leaves_no_partial_file_and_rerun_matches(source, reference, tmp_path):
    data = tmp_path / "data"
    process = _ingest(source, data)
    day_files = data / "raw" / "impression_data"
    deadline = time.monotonic() + 120
    while not any(day_files.glob("day=*/data.parquet")) and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    visible = list(data.glob("raw/*/day=*/data.parquet"))
    assert 0 < len(visible) < 90, "the kill should land while the partitions are being written"
    for path in visible:  # every file a reader can see is complete
        pq.read_metadata(path)
    assert _ingest(source, data).wait() == 0
    expected = {k: v for k, v in digest(reference).items() if k.startswith("raw/") and "day=" in k}
    got = {k: v for k, v in digest(data).items() if k.startswith("raw/")}
    assert got == expected


def test_parallel_backfill_of_seven_cohorts_equals_the_single_run(source, reference, tmp_path, monkeypatch):
    data = tmp_path / "data"
    for part in ("raw", "daily"):
        shutil.copytree(reference / part, data / part)
    for key, value in {"CHURN_DATA_DIR": str(data), "CHURN_SOURCE_DIR": str(source),
                       "CHURN_DUCKDB_MEMORY_LIMIT": "1GB", "CHURN_DUCKDB_THREADS": "1"}.items():
        monkeypatch.setenv(key, value)
    job = dg.build_reconstructable_job("churn_dagster.runs.runner", "job_from_env", ("cohort_features_job",))
    (tmp_path / "home").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "home")) as instance:
        def backfill(day):  # one run per cohort, all at once; each executes its steps in turn (in_process_executor)
            with dg.execute_job(job, instance, tags={"dagster/partition": day.isoformat()}) as r:
                return r.success

        with ThreadPoolExecutor(max_workers=len(COHORTS)) as pool:
            assert all(pool.map(backfill, COHORTS))
    wanted = lambda key: any(f"cohort={c.isoformat()}" in key for c in COHORTS)  # noqa: E731
    expected = {k: v for k, v in digest(reference).items() if wanted(k)}
    got = {k: v for k, v in digest(data).items() if wanted(k)}
    assert len(expected) > 7 * 8 and got == expected


def test_unreachable_mlflow_fails_clearly_after_retries(tmp_path, monkeypatch):
    asset = model_assets.build_model_asset(Partitions(settings_from_env({"CHURN_TRAINING_RETRY_DELAY_SECONDS": "0.1"})), "logreg", "binary")  # the retry policy as configured, fast
    dead = MlflowResource(tracking_uri=f"http://127.0.0.1:{free_port()}")
    lake = LakeResource(data_dir=str(tmp_path / "data"))
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([asset], resources={"lake": lake, "mlflow": dead}, instance=instance,
                                partition_key=CALENDAR.last_labelled_cohort.isoformat(), raise_on_error=False)
    assert not result.success
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 2
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "MLflow tracking server" in str(failure.event_specific_data.error) and "unreachable" in str(
        failure.event_specific_data.error)
    assert not (tmp_path / "data" / "models").exists()
