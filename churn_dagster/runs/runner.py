"""The steps of the data graph and of the whole graph, and their execution in this process.

A step is one run of a job of the code location over a partition range (a single-run backfill), optionally
narrowed to some of its assets (``--select``). ``churn-dagster materialize`` launches the steps in the code
location (:mod:`churn_dagster.runs.launch`); :func:`run_steps` executes them here, in the given instance,
which is what the tests and the benchmarks do. The sequence ends at the first failed run, failed blocking
check or stop signal, raised as one exception whose message fits on a line.
"""

import uuid
import warnings
from dataclasses import dataclass, replace

import dagster as dg

from churn_dagster.core.constants import TRIGGER_TAG, partition_range_tags
from churn_dagster.domain.calendar import Calendar
from churn_dagster.interrupts import Interrupted, SignalRecord, stop_signals
from churn_dagster.runs.run_report import check_outcome
from churn_dagster.settings import Settings, SettingsError
from churn_dagster.studies.churn.config import epoch_cap_config
from churn_dagster.studies.trends.config import trend_run_config
from churn_dagster.studies.trends.sql.trends import TrendSettings, trend_cohorts

# The terminal shows what the assets log; the step-by-step DEBUG events stay in the run's event log, which
# the Dagster UI shows in full.
CONSOLE_AT_INFO = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
# Dagster's documented run tag: the daemon's automatic re-execution (dagster.yaml ``run_retries``) leaves CLI
# runs alone. It could not re-launch them anyway, and the person at the terminal decides what runs next,
# above all after stopping a run with Ctrl-C.
NO_RUN_RETRIES = {"dagster/max_retries": "0"}
CLI_TAGS = {**NO_RUN_RETRIES, TRIGGER_TAG: "cli"}


@dataclass(frozen=True)
class Step:
    """One run: a job, its partition range, its run config, and the assets of the job to run (None: all)."""

    job: str
    first: str | None = None
    last: str | None = None
    run_config: dict | None = None
    assets: frozenset[dg.AssetKey] | None = None

    @property
    def tags(self) -> dict[str, str]:
        if self.first is None:
            return CLI_TAGS
        return {**partition_range_tags(self.first, self.last or self.first), **CLI_TAGS}

    def describe(self) -> str:
        text = self.job + (f" [{self.first} .. {self.last}]" if self.first else "")
        if self.assets is not None:
            text += f" ({', '.join(sorted(key.to_user_string() for key in self.assets))})"
        return text


def data_graph_steps(calendar: Calendar) -> list[Step]:
    """Snapshots, then every day of the log, then every labelled cohort."""
    return [
        Step("raw_snapshots_job"),
        Step("daily_ingest_job", calendar.first_day.isoformat(), calendar.last_day.isoformat()),
        Step("cohort_features_job", calendar.first_day.isoformat(), calendar.last_labelled_cohort.isoformat()),
    ]


def trend_steps(settings: Settings, trend_config: dict | None = None) -> list[Step]:
    """The trend data of the trend cohorts that the last one's models train on (its training window; one run
    each, since the intents of a partition are fit per run), then the trend models and their report for the
    last trend cohort. No steps when the log is too short for a trend cohort."""
    cohorts = trend_cohorts(settings.calendar, TrendSettings(settings.trend_first_days, settings.trend_second_days))
    if not cohorts:
        return []
    last = cohorts[-1].isoformat()
    window = [c.isoformat() for c in cohorts if (cohorts[-1] - c).days < settings.training_cohorts]
    return [*(Step("trend_data_job", c, c) for c in window),
            Step("trend_training_job", last, last, run_config=trend_config)]


def whole_graph_steps(settings: Settings, training_config: dict | None = None, trend_config: dict | None = None,
                      continuation_config: dict | None = None) -> list[Step]:
    """The data graph; then, for the last labelled cohort, the models on its training window, the evaluation
    report and the risk scores of the newest window; then the session-continuation models of the same cohort
    and their report; then the NCM case study (unpartitioned, on the data graph); then the trend data and
    models (:func:`trend_steps`). The other task families come after the churn models so that a failure of
    theirs never holds them back."""
    last = settings.calendar.last_labelled_cohort.isoformat()
    return [*data_graph_steps(settings.calendar), Step("training_job", last, last, run_config=training_config),
            Step("continuation_job", last, last, run_config=continuation_config), Step("case_study_job"),
            *trend_steps(settings, trend_config)]


def training_config(max_epochs: int | None) -> dict | None:
    """Run config of ``training_job`` capping the sequence models' epochs, as ``CHURN_MAX_EPOCHS`` does for
    the daily retrain; None keeps each model's own default."""
    return epoch_cap_config(max_epochs) or None


def trend_training_config(max_epochs: int | None, seeds: int | None = None) -> dict | None:
    """Run config of ``trend_training_job`` capping the trend networks' epochs and the number of seeds each
    model trains with; None keeps the defaults."""
    return trend_run_config(max_epochs, seeds) or None


def select_steps(defs: dg.Definitions, steps: list[Step], expression: str) -> list[Step]:
    """``steps`` narrowed to the assets ``expression`` selects, in Dagster's selection syntax (``lstm_churn``,
    ``group:models``, ``key:lstm_*``, ``key:lstm_churn or key:lstm_level``, ...); a step left with nothing
    to run is dropped. A malformed expression, or one that selects nothing here, is a SettingsError."""
    graph = defs.resolve_asset_graph()
    try:
        with warnings.catch_warnings():
            # group: and tag: clauses use a beta parameter inside Dagster; nothing the user can act on.
            warnings.simplefilter("ignore", dg.BetaWarning)
            wanted = dg.AssetSelection.from_string(expression).resolve(graph)
    except dg.DagsterInvalidSubsetError as exc:  # a key that does not exist
        raise SettingsError([f"--select {expression!r}: {str(exc).split('. ')[0]}"]) from None
    except dg.DagsterError as exc:  # the syntax
        hint = "combine asset keys as 'key:lstm_churn or key:lstm_level', groups as 'group:models'"
        raise SettingsError([f"--select {expression!r}: {str(exc).splitlines()[0]}; {hint}"]) from None
    jobs = {job.name: job for job in defs.jobs}
    narrowed = [replace(step, assets=frozenset(wanted & jobs[step.job].selection.resolve(graph))) for step in steps]
    selected = [step for step in narrowed if step.assets]
    if not selected:
        jobs_run = ", ".join(step.job for step in steps)
        raise SettingsError([f"--select {expression!r} selects no asset that these steps materialize ({jobs_run})"])
    return selected


def _stop_hooks(signals: SignalRecord) -> set[dg.HookDefinition]:
    """Hooks that end the run after a step, whatever its outcome, once a stop signal is recorded.

    Dagster ends a run when the interruption propagates out of a step, but a library may catch it on the way:
    DuckDB turns it into ``RuntimeError: Query interrupted``, a plain step failure, after which Dagster would
    go on to the run's next step. Hooks run between steps, and an interruption raised there ends the run.
    """

    def stop(_context: dg.HookContext) -> None:
        if signals.received() is not None:
            raise dg.DagsterExecutionInterruptedError()

    return {dg.success_hook(name="stop_after_success")(stop), dg.failure_hook(name="stop_after_failure")(stop)}


def _execute(defs: dg.Definitions, instance: dg.DagsterInstance, step: Step, run_id: str,
             hooks: set[dg.HookDefinition]) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(step.job).with_hooks(hooks).execute_in_process(
        run_config={**CONSOLE_AT_INFO, **(step.run_config or {})},
        instance=instance,
        tags=step.tags,
        asset_selection=None if step.assets is None else list(step.assets),
        run_id=run_id,
        raise_on_error=False,
    )


def _settle(instance: dg.DagsterInstance, run_id: str) -> str:
    """What became of a run that a signal stopped. Inside a step Dagster fails the run itself; a signal
    that arrives while the run is being created leaves it NOT_STARTED, so it is marked canceled rather than
    left waiting in the UI."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return "was not created"
    if not run.is_finished:
        instance.report_run_canceled(run, message="Stopped by a signal to churn-dagster as the run started.")
        return "was canceled"
    return f"ended with status {run.status.value}"


def run_steps(defs: dg.Definitions, instance: dg.DagsterInstance, steps: list[Step], echo=print) -> list[str]:
    """Execute ``steps`` in order; return their run ids.

    Stops at the first failed run or failed blocking check (:class:`RunFailed`; failed checks that do not
    block are echoed as warnings), and at SIGINT or SIGTERM (:class:`~churn_dagster.interrupts.Interrupted`):
    the step running stops, its run is recorded as failed (canceled if it had not started), and no further
    step starts.
    """
    run_ids: list[str] = []
    with stop_signals() as signals:
        for step in steps:
            signals.stop_if_received(f"{step.describe()} and the steps after it were not started")
            run_id = str(uuid.uuid4())
            try:
                echo(f"running {step.describe()} ...")
                result = _execute(defs, instance, step, run_id, _stop_hooks(signals))
                stopped = signals.received() is not None
            except KeyboardInterrupt:  # arrived outside Dagster's own handlers, as the run was created or closed
                stopped = True
            if stopped:
                signum = signals.acknowledge()
                raise Interrupted(signum, f"run {run_id} of {step.describe()} {_settle(instance, run_id)}; "
                                  "the steps after it were not started") from None
            run_ids.append(run_id)
            check_outcome(result.run_id, result.success, result.all_events, echo)
            echo(f"  ok (run {result.run_id})")
    return run_ids


def job_from_env(name: str) -> dg.JobDefinition:
    """The job ``name`` with resources configured from the environment, for out-of-process execution
    (``dg.build_reconstructable_job("churn_dagster.runs.runner", "job_from_env", (name,))``)."""
    from churn_dagster.definitions import build_definitions

    return build_definitions().resolve_job_def(name)
