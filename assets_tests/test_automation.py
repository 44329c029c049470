"""Three days of deliveries through the landing sensor, the daily schedule and the retrain sensor, with the
requested runs executed in process: exactly which partitions and assets each day materializes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import dagster as dg
import pytest

from churn_dagster.defs.automation import RETRAIN_TAG, daily_retrain_schedule, landing_sensor, retrain_after_ingest
from churn_dagster.defs.model_assets import FAMILIES, model_name
from churn_dagster.defs.partitions import CALENDAR
from churn_dagster.definitions import build_definitions
from churn_dagster.synth.generator import generate
from churn_dagster.synth.landing import land_days
from conftest import resources_for

MODELS = [model_name(f, t) for f in FAMILIES for t in ("binary", "level")]


class Operator:
    """Plays the daemon: evaluates sensors and the schedule and executes the runs they request."""

    def __init__(self, root, monkeypatch):
        monkeypatch.setenv("CHURN_MAX_EPOCHS", "1")
        monkeypatch.setenv("CHURN_TRAINING_COHORTS", "7")
        self.source = root / "full"
        self.landing = root / "landing"
        generate(self.source, users=8_000, seed=3)
        self.resources = resources_for(self.landing, root)
        self.defs = build_definitions(self.resources)
        (root / "dagster_home").mkdir()
        self.instance = dg.DagsterInstance.local_temp(str(root / "dagster_home"))
        self.cursor = None
        self.runs: list[dg.DagsterRun] = []

    def deliver(self, first: int, last: int) -> None:
        land_days(self.source, self.landing, [CALENDAR.day(dt) for dt in range(first, last + 1)])

    def _execute(self, request: dg.RunRequest, default_job: str) -> dg.DagsterRun:
        result = self.defs.resolve_job_def(request.job_name or default_job).execute_in_process(
            run_config=request.run_config, tags=request.tags, partition_key=request.partition_key,
            instance=self.instance,
        )
        assert result.success
        self.runs.append(result.dagster_run)
        return result.dagster_run

    def sensor_tick(self) -> list[str]:
        result = landing_sensor(dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                                        resources={"source": self.resources["source"]}))
        self.cursor = result.cursor
        return [self._execute(r, "daily_ingest_job").job_name for r in result.run_requests]

    def schedule_tick(self, dt: int) -> dict:
        when = datetime.combine(CALENDAR.day(dt) + timedelta(days=1), datetime.min.time())
        request = daily_retrain_schedule(dg.build_schedule_context(
            instance=self.instance, scheduled_execution_time=when, resources={"source": self.resources["source"]}))
        run = self._execute(request, "daily_ingest_job")
        success = next(iter(self.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)))
        follow = retrain_after_ingest(dg.build_run_status_sensor_context(
            sensor_name="retrain_after_ingest", dagster_event=success.dagster_event, dagster_instance=self.instance,
            dagster_run=run))
        retrained = None
        if isinstance(follow, dg.RunRequest):
            retrained = self._execute(follow, "daily_retrain_job")
        return {"ingest_tags": run.tags, "retrain": retrained}

    def partitions(self, asset: str) -> set[str]:
        return set(self.instance.get_materialized_partitions(dg.AssetKey(asset)))

    def materializations(self, asset: str) -> int:
        return len(self.instance.fetch_materializations(dg.AssetKey(asset), limit=100).records)


@pytest.fixture(scope="module")
def operator(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    op = Operator(tmp_path_factory.mktemp("automation"), monkeypatch)
    yield op
    monkeypatch.undo()


def days(first: int, last: int) -> set[str]:
    return {CALENDAR.day(dt).isoformat() for dt in range(first, last + 1)}


def test_backlog_is_ingested_but_nothing_is_labelled_yet(operator):
    operator.deliver(1, 20)
    assert sorted(operator.sensor_tick()) == ["daily_ingest_job", "raw_snapshots_job"]
    assert operator.sensor_tick() == []  # nothing new
    assert operator.partitions("raw_impressions") == days(1, 20) == operator.partitions("user_day_activity")
    tick = operator.schedule_tick(20)
    assert RETRAIN_TAG not in tick["ingest_tags"] and tick["retrain"] is None
    assert operator.partitions("cohort_users") == set() and operator.materializations("lstm_churn") == 0


@pytest.mark.parametrize("dt", [21, 22, 23])
def test_each_new_day_retrains_exactly_one_more_cohort(operator, dt):
    operator.deliver(dt, dt)
    assert operator.sensor_tick() == ["daily_ingest_job"]
    assert operator.partitions("raw_impressions") == days(1, dt)
    tick = operator.schedule_tick(dt)
    cohort = CALENDAR.day(dt - 20).isoformat()
    assert tick["ingest_tags"][RETRAIN_TAG] == cohort
    assert tick["retrain"].tags["dagster/partition"] == cohort
    expected = days(1, dt - 20)
    for asset in ("cohort_users", "user_splits", "label_scores", "sessions", "static_features", "kpi_features",
                  "sequence_tensors"):
        assert operator.partitions(asset) == expected, asset
    for asset in (*MODELS, "evaluation_report", "scoring_window", "churn_risk_scores"):
        assert operator.materializations(asset) == dt - 20, asset
    data = operator.resources["lake"].lake.root
    trained_on = json.loads((data / "models" / "lstm_churn" / f"cohort={cohort}" / "metrics.json").read_text())["cohorts"]
    assert trained_on == sorted(expected)
    scored = data / "scores" / f"window={CALENDAR.day(dt).isoformat()}" / "churn_risk_scores.parquet"
    window_users = data / "scoring" / "cohort_users" / f"cohort={CALENDAR.day(dt - 13).isoformat()}" / "data.parquet"
    assert scored.exists() and window_users.exists()
