"""What a finished run means for the person at the terminal: which checks failed, and why the run failed.

Dagster hands a failure over as a serialized error chain: the step failure event's ``error``, whose
``cause`` is the exception the asset raised, whose ``cause`` is what that one was raised from, and so on.
The exceptions themselves are gone by then; what is left is the text Python printed for each, which starts
with the exception's qualified class name. That name finds the :class:`~churn_dagster.errors.UserError`
in the chain (bad input, a missing partition, an unreachable MLflow server), whose message already says
what to fix, so the terminal shows that message as one line and not Dagster's wrapper around it.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from churn_dagster.errors import RunFailed, user_error_names

# Module prefixes of Dagster's own exceptions, which wrap what an asset raised.
DAGSTER_MODULES = ("dagster.", "dagster_shared.")


def _chain(info) -> Iterator:
    while info is not None:
        yield info
        info = info.cause


def _name_and_text(info) -> tuple[str, list[str]]:
    """``("module.Class", message lines)`` from the text Python printed for an exception."""
    printed = info.message.strip()
    head, colon, text = printed.partition(": ")
    if head.rsplit(".", 1)[-1] != info.cls_name:
        return info.cls_name, printed.splitlines()
    return head, text.splitlines() if colon else []


def explain(info, where: str) -> RunFailed:
    """The failure described by the error chain ``info`` (a ``SerializableErrorInfo``) of a step or run.

    The first :class:`UserError` in the chain gives its message alone; otherwise the first exception that
    is not one of Dagster's wrappers is named with its class, for a bug report.
    """
    chain = list(_chain(info))
    user_errors = user_error_names()
    for link in chain:
        name, lines = _name_and_text(link)
        if name in user_errors:  # written to be read whole: keep every line
            return RunFailed(f"{' '.join(lines)} ({where})", info.to_string(), user_error=True)
    raised = next((link for link in chain if not _name_and_text(link)[0].startswith(DAGSTER_MODULES)), chain[0])
    name, lines = _name_and_text(raised)
    summary = f"{name.rsplit('.', 1)[-1]}: {lines[0]}" if lines else name.rsplit(".", 1)[-1]
    return RunFailed(f"{summary} ({where})", info.to_string(), user_error=False)


def _describe(evaluation) -> str:
    text = f"{evaluation.asset_key.to_user_string()} / {evaluation.check_name}"
    return f"{text}: {evaluation.description}" if evaluation.description else text


def failed_checks(evaluations) -> tuple[list[str], list[str]]:
    """The failed check ``evaluations`` (``AssetCheckEvaluation``s of a run) as ``asset / check: description``:
    those that block (``blocking`` with ERROR severity, which Dagster lets stop the downstream assets) and the
    others, which only warn."""
    blocking, warnings = [], []
    for evaluation in evaluations:
        if not evaluation.passed:
            stops = evaluation.blocking and evaluation.severity == dg.AssetCheckSeverity.ERROR
            (blocking if stops else warnings).append(_describe(evaluation))
    return blocking, warnings


def run_failure(run_id: str, step_failures: list[dg.DagsterEvent], run_failure_event: dg.DagsterEvent | None) -> RunFailed:
    """Why run ``run_id`` failed: its first failed step, else the run's own failure."""
    if step_failures:
        first = step_failures[0]
        return explain(first.event_specific_data.error, f"in {first.step_key}, run {run_id}")
    if run_failure_event is None:
        return RunFailed(f"the run failed (run {run_id})", "", user_error=False)
    error = run_failure_event.event_specific_data.error if run_failure_event.event_specific_data else None
    if error is None:
        return RunFailed(f"{run_failure_event.message} (run {run_id})", run_failure_event.message or "", user_error=False)
    return explain(error, f"run {run_id}")


def check_outcome(run_id: str, success: bool, events: list[dg.DagsterEvent], echo) -> None:
    """Echo the run's failed checks that only warn; raise for a failed blocking check, then for a failed run."""
    evaluations = [e.event_specific_data for e in events if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    blocking, warn_only = failed_checks(evaluations)
    for check in warn_only:
        echo(f"  warning: check failed: {check}")
    if blocking:
        raise RunFailed(f"blocking check failed: {'; '.join(blocking)} (run {run_id})", "\n".join(blocking),
                        user_error=True)
    if not success:
        step_failures = [e for e in events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        run_failed = next((e for e in events if e.event_type == dg.DagsterEventType.RUN_FAILURE), None)
        raise run_failure(run_id, step_failures, run_failed)
