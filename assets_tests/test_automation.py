"""Days of deliveries through the landing sensor, the cohort automation condition and the daily retrain
schedule, with the requested runs executed in process: exactly which partitions and assets each day
materializes, and what a tick says when it requests nothing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import dagster as dg
import pytest
from conftest import CALENDAR, resources_for

from bench.graph_run import due_steps
from churn_dagster.definitions import build_definitions
from churn_dagster.jobs import cohort_data_selection
from churn_dagster.studies.churn.config import FAMILIES, model_name
from churn_dagster.synth.generator import generate
from churn_dagster.synth.landing import land_days


def landing_sensor(context):
    """The code location's landing sensor (built with the settings of the environment now), evaluated."""
    return build_definitions().get_sensor_def("landing_sensor")(context)


def daily_retrain_schedule(context):
    """The code location's daily retrain schedule (built with the settings of the environment now), evaluated."""
    return build_definitions().get_schedule_def("daily_retrain_schedule")(context)

MODELS = [model_name(f, t) for f in FAMILIES for t in ("binary", "level")]
OBSERVATION_ASSETS = ("window_impressions", "sessions", "static_features", "kpi_features")
MEMBERSHIP_ASSETS = ("cohort_users", "user_splits")  # the split is a hash of the user id: due with membership
LABEL_ASSETS = ("label_scores", "sequence_tensors")
COHORT_DATA = (*MEMBERSHIP_ASSETS, *OBSERVATION_ASSETS, *LABEL_ASSETS)


class Operator:
    """Plays the daemon: evaluates the sensor, the automation conditions and the schedule, and executes the
    runs they request."""

    def __init__(self, root, monkeypatch):
        monkeypatch.setenv("CHURN_MAX_EPOCHS", "1")
        monkeypatch.setenv("CHURN_TRAINING_COHORTS", "7")
        self.source = root / "full"
        self.landing = root / "landing"
        generate(self.source, users=8_000, seed=3)
        self.resources = resources_for(self.landing, root)
        self.defs = build_definitions(resources=self.resources)
        (root / "dagster_home").mkdir()
        self.instance = dg.DagsterInstance.local_temp(str(root / "dagster_home"))
        self.cursor = None
        self.automation_cursor = None

    def deliver(self, first: int, last: int) -> None:
        land_days(self.source, self.landing, [CALENDAR.day(dt) for dt in range(first, last + 1)])

    def _execute(self, job: str, request: dg.RunRequest | None = None, **kwargs) -> dg.DagsterRun:
        if request is not None:
            kwargs.update(run_config=request.run_config, tags=request.tags, partition_key=request.partition_key)
        result = self.defs.resolve_job_def(job).execute_in_process(instance=self.instance, **kwargs)
        assert result.success
        return result.dagster_run

    def sensor_tick(self) -> dg.SensorResult:
        result = landing_sensor(dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                                        resources={"source": self.resources["source"]}))
        self.cursor = result.cursor
        for request in result.run_requests:
            self._execute(request.job_name, request)
        return result

    def automation_tick(self) -> dict[str, set[str]]:
        """The cohort partitions the automation conditions request, each then materialized by one run."""
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance,
                                                   cursor=self.automation_cursor)
        self.automation_cursor = result.cursor
        self.requested = {key.to_user_string(): set(result.get_requested_partitions(key))
                          for key in cohort_data_selection.resolve(self.defs.resolve_asset_graph())}
        requested = {a: self.requested[a] for a in COHORT_DATA}
        for cohort in sorted(set().union(*self.requested.values())):
            keys = [dg.AssetKey.from_user_string(a) for a, cohorts in self.requested.items() if cohort in cohorts]
            self._execute("cohort_features_job", partition_key=cohort, asset_selection=keys)
        return {a: c for a, c in requested.items() if c}

    def schedule_tick(self, dt: int) -> dg.RunRequest | dg.SkipReason:
        when = datetime.combine(CALENDAR.day(dt) + timedelta(days=1), datetime.min.time())
        return daily_retrain_schedule(dg.build_schedule_context(instance=self.instance, scheduled_execution_time=when))

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
    first = operator.sensor_tick()
    assert sorted(r.job_name for r in first.run_requests) == ["daily_ingest_job", "raw_snapshots_job"]
    ingest = next(r for r in first.run_requests if r.job_name == "daily_ingest_job")
    assert ingest.run_key == "delivered days 2019-11-01 .. 2019-11-20 (20 days)"
    assert (ingest.tags["dagster/asset_partition_range_start"], ingest.tags["dagster/asset_partition_range_end"],
            ingest.tags["churn/trigger"]) == ("2019-11-01", "2019-11-20", "landing")
    again = operator.sensor_tick()
    assert again.run_requests == [] and "no new delivery" in again.skip_reason.skip_message
    assert operator.partitions("raw_impressions") == days(1, 20) == operator.partitions("user_day_activity")
    # Each cohort asset is built as soon as the days it reads have landed: membership (and the split, which
    # reads nothing else) the days up to the cohort day, sessions and features its 14 observation days; no
    # cohort has its 7 label days yet.
    observed = days(1, 7)
    assert operator.automation_tick() == {**{a: days(1, 10) for a in MEMBERSHIP_ASSETS},
                                          **{a: observed for a in OBSERVATION_ASSETS}}
    assert operator.automation_tick() == {}  # handled: nothing is requested twice
    skipped = operator.schedule_tick(20)
    assert isinstance(skipped, dg.SkipReason) and "no cohort has its sequence tensors" in skipped.skip_message
    assert operator.partitions("label_scores") == set() and operator.materializations("lstm_churn") == 0


@pytest.mark.parametrize("dt", [21, 22, 23])
def test_each_new_day_builds_and_retrains_exactly_one_more_cohort(operator, dt):
    operator.deliver(dt, dt)
    assert [r.job_name for r in operator.sensor_tick().run_requests] == ["daily_ingest_job"]
    assert operator.partitions("raw_impressions") == days(1, dt)
    cohort = CALENDAR.day(dt - 20).isoformat()
    observed = {CALENDAR.day(dt - 13).isoformat()} if dt - 13 <= 10 else set()  # its observation window ended
    requested = {**{a: {cohort} for a in LABEL_ASSETS}, **{a: observed for a in OBSERVATION_ASSETS if observed}}
    assert operator.automation_tick() == requested
    # bench/graph_run.py times this daily path; its plan, read from the partition mappings, is what was requested.
    planned = {}
    for step in due_steps(operator.defs, CALENDAR.day(dt).isoformat())[1:]:
        for key in step.assets:
            planned.setdefault(key.to_user_string(), set()).add(step.first)
    assert planned == {a: c for a, c in operator.requested.items() if c}
    # The continuation examples read the observation window and the split only: due with the window, not the labels.
    assert operator.requested["continuation_examples"] == observed
    assert operator.automation_tick() == {}
    expected = days(1, dt - 20)
    for asset in LABEL_ASSETS:
        assert operator.partitions(asset) == expected, asset
    request = operator.schedule_tick(dt)
    assert request.partition_key == cohort and request.run_key.startswith(f"retrain cohort {cohort} on the tensors")
    assert request.run_config == {"ops": {name: {"config": {"epochs": 1}} for name in MODELS if "lstm" in name}}
    operator._execute("training_job", request)
    assert operator.schedule_tick(dt).run_key == request.run_key  # no new tensors: the daemon skips it as a duplicate
    for asset in (*MODELS, "evaluation_report", "scoring_window", "churn_risk_scores"):
        assert operator.materializations(asset) == dt - 20, asset
    data = operator.resources["lake"].lake.root
    trained_on = json.loads((data / "models" / "lstm_churn" / f"cohort={cohort}" / "metrics.json").read_text())["cohorts"]
    assert trained_on == sorted(expected)
    scored = data / "scores" / f"window={CALENDAR.day(dt).isoformat()}" / "churn_risk_scores.parquet"
    window_users = data / "scoring" / "cohort_users" / f"cohort={CALENDAR.day(dt - 13).isoformat()}" / "data.parquet"
    assert scored.exists() and window_users.exists()
