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


def failed_checks(result: dg.ExecuteInProcessResult) -> tuple[list[str], list[str]]:
    """The run's failed checks as ``asset / check: description``: those that block (``blocking`` with ERROR
    severity, which Dagster lets stop the downstream assets) and the others, which only warn."""
    blocking, warnings = [], []
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            stops = evaluation.blocking and evaluation.severity == dg.AssetCheckSeverity.ERROR
            (blocking if stops else warnings).append(_describe(evaluation))
    return blocking, warnings


def run_failure(result: dg.ExecuteInProcessResult) -> RunFailed:
    """Why the failed run ``result`` failed: its first failed step, else the run's own failure."""
    step_failures = result.get_step_failure_events()
    if step_failures:
        first = step_failures[0]
        return explain(first.event_specific_data.error, f"in {first.step_key}, run {result.run_id}")
    event = result.get_run_failure_event()
    error = event.event_specific_data.error if event.event_specific_data else None
    if error is None:
        return RunFailed(f"{event.message} (run {result.run_id})", event.message or "", user_error=False)
    return explain(error, f"run {result.run_id}")
