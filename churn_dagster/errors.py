"""The one base class of errors that the person running the pipeline can fix themselves.

A bad source file, a missing upstream partition, a setting out of range or an unreachable MLflow server are
not bugs: the message already says what to change, so the CLI prints it as one line without a traceback.
Anything else is unforeseen, and the CLI points at ``--verbose`` instead. No Dagster here: the transforms
raise these errors too.
"""

from __future__ import annotations


class UserError(Exception):
    """An error whose message names what to fix (the file and line, the variable and its allowed range)."""

    #: The CLI's exit status for this error (1: something failed while running; 2: nothing was run).
    exit_code = 1


def user_error_names() -> dict[str, type[UserError]]:
    """Every subclass of :class:`UserError` by the name Python prints in a traceback's last line
    (``module.Class``), so that an error that crossed a process or a Dagster step boundary as text can be
    recognised."""
    found: dict[str, type[UserError]] = {}
    pending = [UserError]
    while pending:
        cls = pending.pop()
        found[f"{cls.__module__}.{cls.__qualname__}"] = cls
        pending.extend(cls.__subclasses__())
    return found


class RunFailed(Exception):
    """A Dagster run failed. The message is one line for the terminal, ``details`` the whole error chain with
    its stacks (for ``--verbose``), and ``user_error`` says whether the line already says what to fix (or is
    a bug report, to be followed by the hint to look at the traceback)."""

    def __init__(self, summary: str, details: str, user_error: bool):
        super().__init__(summary)
        self.details = details
        self.user_error = user_error
