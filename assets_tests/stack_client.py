"""The Dagster webserver's GraphQL API as the two stack tests use it (test_integration_stack: the topology run
natively; test_docker_stack: docker-compose.yml on a Docker engine): launch a job, which is queued and then
started by the daemon, wait for the run to end, list the runs, and the sequence both tests launch: the data
graph and one model on a small synthetic set.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from mlflow import MlflowClient

from churn_dagster.settings import settings_from_env

LOCATION = {"repositoryLocationName": "churn_dagster", "repositoryName": "__repository__"}
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}"""
STATUS = "query Status($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
RUNS = "query { runsOrError(limit: 50) { ... on Runs { results { runId jobName status } } } }"
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
AUTOMATION = """query { repositoryOrError(repositorySelector:
  {repositoryLocationName: "churn_dagster", repositoryName: "__repository__"}) { ... on Repository {
  sensors { id name sensorState { status } } schedules { id name scheduleState { status } } } } }"""
STOP_SENSOR = "mutation Stop($id: String) { stopSensor(id: $id) { __typename } }"
STOP_SCHEDULE = "mutation Stop($id: String) { stopRunningSchedule(id: $id) { __typename } }"


class DagsterGraphQL:
    """The API at ``web_url``; ``diagnostics`` returns the server logs an assertion message should carry."""

    def __init__(self, web_url: str, diagnostics: Callable[[], str] = lambda: ""):
        self.web_url, self.diagnostics = web_url, diagnostics

    def query(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.web_url}/graphql", body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"GraphQL {exc.code}: {exc.read()[:2000]!r}\n{self.diagnostics()}") from exc
        assert "errors" not in payload, payload
        return payload["data"]

    def launch(self, job: str, tags: dict | None = None, run_config: dict | None = None, assets=None) -> str:
        selector = {**LOCATION, "jobName": job}
        if assets:
            selector["assetSelection"] = [{"path": [a]} for a in assets]
        params = {"selector": selector, "runConfigData": run_config or {},
                  "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}}
        result = self.query(LAUNCH, {"params": params})["launchRun"]
        assert result["__typename"] == "LaunchRunSuccess", result
        return result["run"]["runId"]

    def status(self, run_id: str) -> str:
        return self.query(STATUS, {"id": run_id})["runOrError"]["status"]

    def wait_for(self, run_id: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while (status := self.status(run_id)) not in FINISHED:
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {status} after {timeout:.0f} s")
            time.sleep(2)
        return status

    def run_statuses(self) -> dict[str, str]:
        return {r["runId"]: r["status"] for r in self.query(RUNS)["runsOrError"]["results"]}

    def automation_states(self) -> dict[str, str]:
        repository = self.query(AUTOMATION)["repositoryOrError"]
        return {**{s["name"]: s["sensorState"]["status"] for s in repository["sensors"]},
                **{s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]}}

    def stop_automation(self) -> None:
        """Stop every sensor and schedule (they run by default), so that only the runs a test launches run:
        the cohort sensor would otherwise rebuild the same partitions beside them, and the retraining
        schedule train all eight models when its hour comes."""
        repository = self.query(AUTOMATION)["repositoryOrError"]
        for sensor in repository["sensors"]:
            self.query(STOP_SENSOR, {"id": sensor["id"]})
        for schedule in repository["schedules"]:
            self.query(STOP_SCHEDULE, {"id": schedule["id"]})
        states = self.automation_states()
        assert states and set(states.values()) == {"STOPPED"}, states

    def run_to_success(self, job: str, tags: dict | None = None, run_config: dict | None = None,
                       assets=None, timeout: float = 600) -> str:
        run_id = self.launch(job, tags, run_config, assets)
        status = self.wait_for(run_id, timeout)
        assert status == "SUCCESS", f"{job}: {status}\n{self.diagnostics()}"
        return run_id


def partition_range(first, last) -> dict:
    return {"dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat()}


def launch_data_graph_and_one_model(api: DagsterGraphQL) -> dict[str, str]:
    """The data graph (snapshots, every day, every labelled cohort) and the LSTM for the last labelled cohort
    (2 epochs), one run after the other; the run id of each job."""
    steps = [
        ("raw_snapshots_job", {}, None, None),
        ("daily_ingest_job", partition_range(settings_from_env().calendar.first_day, settings_from_env().calendar.last_day), None, None),
        ("cohort_features_job", partition_range(settings_from_env().calendar.first_day, settings_from_env().calendar.last_labelled_cohort), None, None),
        ("training_job", {"dagster/partition": settings_from_env().calendar.last_labelled_cohort.isoformat()},
         {"ops": {"lstm_churn": {"config": {"epochs": 2}}}}, ["lstm_churn"]),
    ]
    return {job: api.run_to_success(job, tags, config, assets) for job, tags, config, assets in steps}


def check_lstm_training_in_mlflow(tracking_url: str, training_run_id: str) -> list:
    """The MLflow runs of the LSTM trained by ``training_run_id`` (as launched above): one per split scheme,
    2 epochs of validation loss, the learning curves, the champion alias; returned for further checks."""
    client = MlflowClient(tracking_url)
    experiment = client.get_experiment_by_name("churn_dagster")
    runs = client.search_runs([experiment.experiment_id], f"tags.`dagster.run_id` = '{training_run_id}'")
    assert {r.data.tags["split_scheme"] for r in runs} == {"random", "out_of_time"}
    random = next(r for r in runs if r.data.tags["split_scheme"] == "random")
    assert len(client.get_metric_history(random.info.run_id, "val_loss")) == 2
    assert "learning_curves.png" in {a.path for a in client.list_artifacts(random.info.run_id)}
    assert client.get_model_version_by_alias("lstm_churn", "champion") is not None
    return runs
