"""Run the data graph through Dagster, in the instance under ``DAGSTER_HOME``, for the CLI.

Each step is a real run of a job of the code location (single-run backfills over partition ranges), so it
appears in the Dagster UI with its logs, materializations and check results, exactly as if launched there.
"""

from dataclasses import dataclass

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from churn_dagster.calendar import Calendar


# The terminal shows what the assets log and any failure; the step-by-step DEBUG events stay in the run's
# event log, which the Dagster UI shows in full.
CONSOLE_AT_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


class RunFailed(RuntimeError):
    """A step of the graph failed; the message names the run to open in the UI."""


@dataclass(frozen=True)
class Step:
    job: str
    first: str | None = None
    last: str | None = None
    run_config: dict | None = None

    @property
    def tags(self) -> dict[str, str]:
        if self.first is None:
            return {}
        return {ASSET_PARTITION_RANGE_START_TAG: self.first, ASSET_PARTITION_RANGE_END_TAG: self.last or self.first}

    def describe(self) -> str:
        return self.job + (f" [{self.first} .. {self.last}]" if self.first else "")


def data_graph_steps(calendar: Calendar) -> list[Step]:
    """Snapshots, then every day of the log, then every labelled cohort."""
    return [
        Step("raw_snapshots_job"),
        Step("daily_ingest_job", calendar.first_day.isoformat(), calendar.last_day.isoformat()),
        Step("cohort_features_job", calendar.first_day.isoformat(), calendar.last_labelled_cohort.isoformat()),
    ]


def whole_graph_steps(calendar: Calendar, training_config: dict | None = None) -> list[Step]:
    """The data graph, then, for the last labelled cohort, the models on its training window, the evaluation
    report and the risk scores of the newest window."""
    last = calendar.last_labelled_cohort.isoformat()
    return [*data_graph_steps(calendar), Step("training_job", last, last, run_config=training_config)]


def run_steps(defs: dg.Definitions, instance: dg.DagsterInstance, steps: list[Step], echo=print) -> list[str]:
    """Execute ``steps`` in order; return their run ids. Stops at the first failure."""
    run_ids = []
    for step in steps:
        echo(f"running {step.describe()} ...")
        result = defs.resolve_job_def(step.job).execute_in_process(
            run_config={**CONSOLE_AT_INFO, **(step.run_config or {})},
            instance=instance,
            tags=step.tags,
            raise_on_error=False,
        )
        run_ids.append(result.run_id)
        failed_checks = [
            e.event_specific_data
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
        ]
        for evaluation in failed_checks:
            echo(f"  check failed: {evaluation.asset_key.to_user_string()} / {evaluation.check_name}")
        if not result.success:
            raise RunFailed(f"{step.describe()} failed (run {result.run_id}); see its logs in the Dagster UI")
        echo(f"  ok (run {result.run_id})")
    return run_ids


def job_from_env(name: str) -> dg.JobDefinition:
    """The job ``name`` with resources configured from the environment, for out-of-process execution
    (``dg.build_reconstructable_job("churn_dagster.defs.runner", "job_from_env", (name,))``)."""
    from churn_dagster.definitions import build_definitions

    return build_definitions().resolve_job_def(name)
