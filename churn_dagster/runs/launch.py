"""``churn-dagster materialize``: each step launched as a run of the code location, and followed to its end.

The runs are created through the code location as the UI creates them (:mod:`churn_dagster.runs.servers`), so
they carry its origin: they are listed on their job's Runs tab and in the Overview timeline, and the UI
re-executes them without warning that the job may be a different version. Each run's config carries this
process's settings (the ``resources`` section, :func:`~churn_dagster.core.resources.settings_run_config`), so
that a re-execution from the UI reads and writes the same folders whatever the UI's environment, and runs its
steps in one process, as the command always has.

Each submission carries a tag with a launch id of its own. Launching a run can take the webserver minutes
(a range of 546 days records one planned materialization per asset and day, and other commands may load the
machine), so the client waits for the answer only :data:`ANSWER_SECONDS`; after that, or when the connection
breaks, the run is looked up in the instance by its launch id and followed once the webserver has created it.
A submission is sent again only when it provably reached no server (the connection was refused or timed
out), so no step ever runs twice; the webserver's own refusal is final.

While a run executes, what its assets log is printed as it arrives (every event with ``--verbose``). The
sequence ends at the first failed run or failed blocking check, raised as one exception whose message fits on
a line, and at SIGINT or SIGTERM: the run executing (or being launched) is terminated through the webserver,
as the UI's *Terminate* button does, and no further step starts.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import dagster as dg

from churn_dagster.core.resources import settings_run_config
from churn_dagster.errors import RunFailed
from churn_dagster.interrupts import Interrupted, stop_signals
from churn_dagster.runs.run_report import check_outcome
from churn_dagster.runs.runner import Step
from churn_dagster.runs.servers import LOCATION, REPOSITORY, Webserver, own_webserver
from churn_dagster.settings import Settings

POLL_SECONDS = 0.25
IN_ONE_PROCESS = {"execution": {"config": {"in_process": {}}}}
LAUNCH_TAG = "churn/launch_id"
CONNECT_SECONDS = 10
ANSWER_SECONDS = 60
SUBMIT_ATTEMPTS = 3
# How long a run may take to be created, then to start, before the command gives up on it: far beyond the
# minutes a loaded machine takes, short of waiting forever for a launch that failed halfway.
LAUNCH_WAIT_SECONDS = 1800
STOP_TIMEOUT_SECONDS = 120


def _execution_config(defs: dg.Definitions, job: str) -> dict:
    """Steps of a job on Dagster's default executor run in the run worker's process (one start-up per run,
    not per step); a job with an executor of its own (the data jobs, or containers per step) keeps it."""
    return IN_ONE_PROCESS if defs.resolve_job_def(job).executor_def is dg.multi_or_in_process_executor else {}


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


class ClientFailure(NamedTuple):
    """What happened to a request of the GraphQL client, see :func:`client_failure`."""

    line: str
    sent: bool
    answered: bool


def client_failure(exc: Exception) -> ClientFailure:
    """What a ``DagsterGraphQLClientError`` says happened to a request.

    The client puts the whole query and its variables into the message of a transport failure; the line says
    instead what failed, on one line. ``sent`` is False only when the request provably reached no server (the
    connection was refused or timed out), ``answered`` True when a server answered: its work on the request
    is over. A request sent but not answered (no answer in time, the connection lost) is neither: the
    webserver may still be carrying it out.
    """
    import requests
    from gql.transport.exceptions import TransportQueryError, TransportServerError
    from urllib3.exceptions import ConnectTimeoutError

    chain, link = [], exc.__cause__  # the client's wrapper of gql's wrapper of what requests raised, ...
    while link is not None and len(chain) < 10:
        chain.append(link)
        link = link.__cause__ or link.__context__
    transport = next((e for e in chain if isinstance(e, requests.RequestException)), None)
    if isinstance(transport, requests.ConnectionError):
        if isinstance(getattr(transport.args[0] if transport.args else None, "reason", None), ConnectTimeoutError):
            return ClientFailure("could not connect to the webserver", sent=False, answered=False)
        return ClientFailure("the connection to the webserver broke before it answered", sent=True, answered=False)
    if isinstance(transport, requests.Timeout):
        return ClientFailure("the webserver did not answer in time", sent=True, answered=False)
    server_error = next((e for e in chain if isinstance(e, TransportServerError)), None)
    if server_error is not None:
        return ClientFailure(f"the webserver answered with HTTP status {server_error.code}", sent=True, answered=True)
    query_error = next((e for e in chain if isinstance(e, TransportQueryError)), None)
    if query_error is not None:
        messages = [e.get("message", "") for e in query_error.errors or [] if isinstance(e, dict)]
        return ClientFailure(f"GraphQL error: {_first_line('; '.join(messages) or str(query_error))}", True, True)
    if chain:  # e.g. an answer that is not GraphQL
        return ClientFailure(f"{type(chain[0]).__name__}: {_first_line(str(chain[0]))}", sent=True, answered=True)
    kind, *details = exc.args or ("error",)  # the server's answer: (error type, message or config errors)
    detail = details[0] if details else getattr(exc, "body", None)
    if isinstance(detail, list):  # the config errors of RunConfigValidationInvalid
        detail = "; ".join(e.get("message", str(e)) if isinstance(e, dict) else str(e) for e in detail)
    line = f"{kind}: {_first_line(str(detail))}" if detail else _first_line(str(kind))
    return ClientFailure(line, sent=True, answered=True)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "(no message)")


def _launched_run(instance: dg.DagsterInstance, launch_id: str) -> dg.DagsterRun | None:
    """The run that the submission ``launch_id`` created (not a re-execution of it, which copies its tags)."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={LAUNCH_TAG: launch_id}))
    return next((run for run in runs if run.parent_run_id is None), None)


def _wait_for_launched(server: Webserver, instance: dg.DagsterInstance, launch_id: str, seconds: float,
                       signals=None) -> dg.DagsterRun | None:
    """The run of ``launch_id`` once the webserver has created it; None if it exits or ``seconds`` pass first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run = _launched_run(instance, launch_id)
        if run is not None or server.exit_status() is not None:
            return run
        if signals is not None and signals.received() is not None:
            raise KeyboardInterrupt
        time.sleep(POLL_SECONDS)
    return None


def _submit(server: Webserver, client, instance: dg.DagsterInstance, step: Step, run_config: dict,
            launch_id: str, echo, signals) -> str:
    """Launch ``step`` as a run tagged with ``launch_id``; its run id (see the module's docstring)."""
    from dagster_graphql import DagsterGraphQLClientError

    for attempt in range(1, SUBMIT_ATTEMPTS + 1):
        try:
            return client.submit_job_execution(
                step.job, repository_location_name=LOCATION, repository_name=REPOSITORY,
                run_config=run_config, tags={**step.tags, LAUNCH_TAG: launch_id},
                asset_selection=None if step.assets is None else sorted(step.assets, key=lambda k: k.path))
        except DagsterGraphQLClientError as exc:
            failure = client_failure(exc)
        if failure.answered:
            raise RunFailed(f"the code location refused {step.describe()}: {failure.line}", failure.line,
                            user_error=False)
        if failure.sent:
            echo(f"  {failure.line} (it may still be launching the run); waiting for the run of launch {launch_id}")
            run = _wait_for_launched(server, instance, launch_id, LAUNCH_WAIT_SECONDS, signals)
            if run is not None:
                return run.run_id
            break
        if server.exit_status() is not None or attempt == SUBMIT_ATTEMPTS:
            break
        echo(f"  {failure.line}; sending {step.describe()} again (attempt {attempt + 1} of {SUBMIT_ATTEMPTS})")
        time.sleep(1)
    status = server.exit_status()
    why = f"the webserver exited with status {status}" if status is not None else failure.line
    raise RunFailed(f"{step.describe()} was not launched: {why}, and no run of launch {launch_id} exists; "
                    f"see {server.log_path}", why, user_error=True)


def _until_started(server: Webserver, instance: dg.DagsterInstance, follower: _Follower, echo) -> dg.DagsterRun:
    """The run once it can be terminated: Dagster terminates a STARTED run, not one still being launched, which
    would then run on. So wait for it to start (or end, or never start: its webserver exited)."""
    run = instance.get_run_by_id(follower.run_id)
    launching = (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING)
    if run.status in launching:
        echo(f"  waiting for run {run.run_id} to start, to terminate it")
    deadline = time.monotonic() + LAUNCH_WAIT_SECONDS
    while run.status in launching and time.monotonic() < deadline:
        if run.status == dg.DagsterRunStatus.NOT_STARTED and server.exit_status() is not None:
            break
        time.sleep(POLL_SECONDS)
        follower.read(echo)
        run = instance.get_run_by_id(run.run_id)
    return run


def _terminate(server: Webserver, client, instance: dg.DagsterInstance, follower: _Follower, echo) -> str:
    """Terminate the followed run as the UI's button does and wait for it to end; its final status."""
    from dagster_graphql import DagsterGraphQLClientError

    run = _until_started(server, instance, follower, echo)
    if run.status == dg.DagsterRunStatus.NOT_STARTED:  # never launched: nothing to stop, only to record
        instance.report_run_canceled(run, message="Stopped by a signal to churn-dagster before it was launched.")
        return "was canceled before it started"
    if not run.is_finished:
        try:
            client.terminate_run(run.run_id)
        except DagsterGraphQLClientError as exc:  # e.g. a run that ended meanwhile; say what happened
            echo(f"  terminating run {run.run_id}: {client_failure(exc).line}")
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while not run.is_finished and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        follower.read(echo)
        run = instance.get_run_by_id(run.run_id)
    return f"ended with status {run.status.value}" if run.is_finished else f"is still {run.status.value}"


def _follow(server: Webserver, instance: dg.DagsterInstance, step: Step, follower: _Follower, echo,
            signals) -> dg.DagsterRun:
    """Echo the run's log until it has finished; raise if it will never start (its launch failed halfway)."""
    run_id = follower.run_id
    deadline = time.monotonic() + LAUNCH_WAIT_SECONDS
    run = instance.get_run_by_id(run_id)
    while not run.is_finished:
        if signals.received() is not None:
            raise KeyboardInterrupt
        why = None
        if run.status == dg.DagsterRunStatus.NOT_STARTED and server.exit_status() is not None:
            why = f"the webserver exited with status {server.exit_status()} before run {run_id} started"
        elif run.status in (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING) \
                and time.monotonic() > deadline:
            why = f"run {run_id} is still {run.status.value} after {LAUNCH_WAIT_SECONDS} s"
        if why:
            raise RunFailed(f"{step.describe()}: {why}; see {server.log_path}", why, user_error=True)
        time.sleep(POLL_SECONDS)
        follower.read(echo)
        run = instance.get_run_by_id(run_id)
    follower.read(echo)
    return run


def launch_steps(steps: list[Step], instance: dg.DagsterInstance, home: Path, defs: dg.Definitions,
                 settings: Settings, environ: Mapping[str, str], echo=print, verbose: bool = False) -> list[str]:
    """Launch ``steps`` one after the other as runs of the code location, which loads with the variables
    ``environ`` (the ones ``settings`` were read from); return their run ids."""
    run_ids: list[str] = []
    run_settings = settings_run_config(settings)
    with stop_signals() as signals, own_webserver(home, environ, echo) as server:
        client = server.client(CONNECT_SECONDS, ANSWER_SECONDS)
        for step in steps:
            not_started = f"{step.describe()} and the steps after it were not started"
            signals.stop_if_received(not_started)
            launch_id = uuid.uuid4().hex
            follower, submitting = None, False
            try:
                echo(f"running {step.describe()} ...")
                run_config = {**(step.run_config or {}), **run_settings, **_execution_config(defs, step.job)}
                submitting = True  # from here on, the webserver may create the run
                run_id = _submit(server, client, instance, step, run_config, launch_id, echo, signals)
                follower = _Follower(instance, run_id, verbose)
                run = _follow(server, instance, step, follower, echo, signals)
            except KeyboardInterrupt:
                signum = signals.acknowledge()
                if not submitting:
                    raise Interrupted(signum, not_started) from None
                if follower is None:  # stopped while the run was being launched: it may exist, or soon will
                    echo(f"  waiting for the run of launch {launch_id}, to terminate it")
                    launched = _wait_for_launched(server, instance, launch_id, STOP_TIMEOUT_SECONDS)
                    if launched is None:
                        raise Interrupted(signum, f"{step.describe()} was stopped before its run was created; "
                                          "the steps after it were not started") from None
                    follower = _Follower(instance, launched.run_id, verbose)
                outcome = _terminate(server, client, instance, follower, echo)
                raise Interrupted(signum, f"run {follower.run_id} of {step.describe()} {outcome}; "
                                  "the steps after it were not started") from None
            run_ids.append(run_id)
            check_outcome(run_id, run.status == dg.DagsterRunStatus.SUCCESS, follower.events, echo)
            echo(f"  ok (run {run_id})")
    return run_ids
