"""``churn-dagster materialize``: each step launched as a run of the code location, and followed to its end.

The runs are created through the code location as the UI creates them (:mod:`churn_dagster.runs.servers`), so
they carry its origin: they are listed on their job's Runs tab and in the Overview timeline, and the UI
re-executes them without warning that the job may be a different version. Each run's config carries this
process's settings (the ``resources`` section, :func:`~churn_dagster.defs.resources.settings_run_config`), so
that a re-execution from the UI reads and writes the same folders whatever the UI's environment, and runs its
steps in one process, as the command always has.

While a run executes, what its assets log is printed as it arrives (every event with ``--verbose``). The
sequence ends at the first failed run or failed blocking check, raised as one exception whose message fits on
a line, and at SIGINT or SIGTERM: the run executing is terminated through the webserver, as the UI's
*Terminate* button does, and no further step starts.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path

import dagster as dg

from churn_dagster.defs.resources import settings_run_config
from churn_dagster.errors import RunFailed
from churn_dagster.interrupts import Interrupted, stop_signals
from churn_dagster.runs.run_report import check_outcome
from churn_dagster.runs.runner import Step
from churn_dagster.runs.servers import LOCATION, REPOSITORY, code_location_client

POLL_SECONDS = 0.25
IN_ONE_PROCESS = {"execution": {"config": {"in_process": {}}}}


def _execution_config(defs: dg.Definitions, job: str) -> dict:
    """Steps of a job on Dagster's default executor run in the run worker's process (one start-up per run,
    not per step); a job with an executor of its own (the data jobs, or containers per step) keeps it."""
    return IN_ONE_PROCESS if defs.resolve_job_def(job).executor_def is dg.multi_or_in_process_executor else {}
STOP_TIMEOUT_SECONDS = 120


def _line(entry, verbose: bool) -> str | None:
    """What the terminal shows of an event log entry: the assets' own messages from INFO on (errors are
    reported as one line at the end), or with ``verbose`` every entry."""
    stamp = datetime.fromtimestamp(entry.timestamp).strftime("%H:%M:%S")
    if verbose:
        return f"{stamp} {logging.getLevelName(entry.level)} {entry.step_key or ''} {entry.message}".rstrip()
    if entry.dagster_event is None and logging.INFO <= entry.level < logging.ERROR:
        return f"{stamp} {logging.getLevelName(entry.level)} {entry.user_message}"
    return None


class _Follower:
    """Reads a run's event log from where it left off."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, verbose: bool):
        self.instance, self.run_id, self.verbose = instance, run_id, verbose
        self.cursor: str | None = None
        self.events: list[dg.DagsterEvent] = []

    def read(self, echo) -> None:
        while True:
            page = self.instance.get_records_for_run(self.run_id, cursor=self.cursor, limit=1000)
            for record in page.records:
                entry = record.event_log_entry
                if entry.dagster_event is not None:
                    self.events.append(entry.dagster_event)
                line = _line(entry, self.verbose)
                if line:
                    echo(line)
            self.cursor = page.cursor
            if not page.has_more:
                return


def _submit(client, step: Step, run_config: dict) -> str:
    from dagster_graphql import DagsterGraphQLClientError

    try:
        return client.submit_job_execution(
            step.job, repository_location_name=LOCATION, repository_name=REPOSITORY,
            run_config=run_config, tags=step.tags,
            asset_selection=None if step.assets is None else sorted(step.assets, key=lambda k: k.path))
    except DagsterGraphQLClientError as exc:
        raise RunFailed(f"the code location refused {step.describe()}: {exc}", str(exc), user_error=False) from exc


def _terminate(client, instance: dg.DagsterInstance, run_id: str, follower: _Follower, echo) -> str:
    """Terminate run ``run_id`` as the UI's button does and wait for it to end; its final status."""
    try:
        client.terminate_run(run_id)
    except Exception as exc:  # noqa: BLE001 - a run that ended meanwhile cannot be terminated; say what happened
        echo(f"  terminating run {run_id}: {exc}")
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    run = instance.get_run_by_id(run_id)
    while not run.is_finished and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        follower.read(echo)
        run = instance.get_run_by_id(run_id)
    return f"ended with status {run.status.value}" if run.is_finished else f"is still {run.status.value}"


def launch_steps(steps: list[Step], instance: dg.DagsterInstance, home: Path, defs: dg.Definitions, echo=print,
                 verbose: bool = False) -> list[str]:
    """Launch ``steps`` one after the other as runs of the code location; return their run ids."""
    run_ids: list[str] = []
    settings = settings_run_config()
    with stop_signals() as signals, code_location_client(home, echo) as client:
        for step in steps:
            signals.stop_if_received(f"{step.describe()} and the steps after it were not started")
            echo(f"running {step.describe()} ...")
            run_config = {**(step.run_config or {}), **settings, **_execution_config(defs, step.job)}
            run_id = _submit(client, step, run_config)
            follower = _Follower(instance, run_id, verbose)
            try:
                run = instance.get_run_by_id(run_id)
                while not run.is_finished:
                    if signals.received() is not None:
                        raise KeyboardInterrupt
                    time.sleep(POLL_SECONDS)
                    follower.read(echo)
                    run = instance.get_run_by_id(run_id)
                follower.read(echo)
            except KeyboardInterrupt:
                signum = signals.acknowledge()
                outcome = _terminate(client, instance, run_id, follower, echo)
                raise Interrupted(signum, f"run {run_id} of {step.describe()} {outcome}; "
                                  "the steps after it were not started") from None
            run_ids.append(run_id)
            check_outcome(run_id, run.status == dg.DagsterRunStatus.SUCCESS, follower.events, echo)
            echo(f"  ok (run {run_id})")
    return run_ids
