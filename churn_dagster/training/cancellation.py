"""A terminated run stops even when Dagster's one interrupt is lost.

The UI's *Terminate* button (and ``churn-dagster materialize`` on Ctrl-C or SIGTERM) marks the run CANCELING
and has the code server send the run worker a single SIGINT, which Dagster turns into an exception inside the
step. Python drops an exception raised while a garbage-collector callback runs ("Exception ignored in ..."):
this happens during MLflow's SQLAlchemy setup at the start of a training step, and then a step configured for
100,000 epochs trains on with its run shown as CANCELING for good. So long steps run inside
:func:`interrupt_when_canceled`, which watches the run's status and interrupts the step again every
:data:`REPEAT_SECONDS` until the step leaves the block.

The watcher leaves Dagster's own interrupt :data:`GRACE_SECONDS` to arrive first. That interrupt reaches the
run worker, whose executor then starts no further step; a step that stopped itself before it would release
its ``gpu`` pool slot, and the executor, not yet told of the termination, would start the next training step
of the canceled run (seen under load in CI: ``lstm_level`` started after ``lstm_churn`` was stopped).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg

POLL_SECONDS = 1.0
GRACE_SECONDS = 5.0  # Dagster's interrupt travels webserver -> code server -> run worker -> step
REPEAT_SECONDS = 2.0  # long enough for the step to unwind from the first interrupt before the next one lands
STOPPING = (dg.DagsterRunStatus.CANCELING, dg.DagsterRunStatus.CANCELED)


@contextmanager
def interrupt_while(canceled: Callable[[], bool], poll_seconds: float = POLL_SECONDS,
                    repeat_seconds: float = REPEAT_SECONDS, grace_seconds: float = GRACE_SECONDS) -> Iterator[None]:
    """Within the block, SIGINT this process ``grace_seconds`` after ``canceled()`` turns true, and again
    every ``repeat_seconds`` until the block is left. Off the main thread nothing is watched: signals reach
    only the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    left = threading.Event()
    lock = threading.Lock()

    def watch() -> None:
        while not left.wait(poll_seconds):
            if canceled():
                break
        else:
            return
        wait = grace_seconds
        while not left.wait(wait):
            with lock:
                if left.is_set():
                    return
                os.kill(os.getpid(), signal.SIGINT)
            wait = repeat_seconds

    watcher = threading.Thread(target=watch, name="interrupt-when-canceled", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        with lock:
            left.set()
        watcher.join()


def interrupt_when_canceled(context: dg.AssetExecutionContext):
    """:func:`interrupt_while` the run of ``context`` is being (or has been) terminated."""
    instance, run_id = context.instance, context.run.run_id

    def canceled() -> bool:
        try:
            run = instance.get_run_by_id(run_id)
        except Exception:  # noqa: BLE001 - storage busy or gone: asked again at the next poll
            return False
        return run is not None and run.status in STOPPING

    return interrupt_while(canceled)
