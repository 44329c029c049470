"""Ctrl-C and SIGTERM stop the CLI cleanly, and afterwards we know which of the two it was.

While a run executes in process, Dagster replaces the SIGINT and SIGTERM handlers with its own: a signal
during a step raises ``DagsterExecutionInterruptedError`` inside it, which fails the step and the run, and
``execute_in_process(raise_on_error=False)`` then simply *returns*; a signal between two steps of a run may
not be raised at all. Dagster's handlers do not record which signal arrived, so it is recorded underneath
them with :func:`signal.set_wakeup_fd`: Python writes the number of every signal it handles to that socket,
whichever handler is installed. The runner reads the record after every run and starts nothing more once a
signal is in it. Outside runs, SIGTERM raises ``KeyboardInterrupt`` exactly as Ctrl-C does.

A handler raises its exception only once, and Python drops an exception raised while a garbage-collector
callback runs (it prints "Exception ignored in ..."): a signal that lands there is lost and the step runs on.
This happened in MLflow's SQLAlchemy setup at the start of a training step. So until the code acts on the
signal, it is sent again every :data:`REPEAT_SECONDS`.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
REPEAT_SECONDS = 2.0  # long enough for a step to unwind (close its MLflow run) before the next one lands


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the work; the message says what was stopped and what was not started."""

    def __init__(self, signum: int, what: str):
        super().__init__(f"stopped by {signal.Signals(signum).name}: {what}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


class SignalRecord:
    """The stop signal received while :func:`stop_signals` is active (none off the main thread)."""

    def __init__(self, reader: socket.socket | None):
        self._reader = reader
        self._lock = threading.Lock()
        self._first: int | None = None
        self._sent_at = 0.0
        self._acted_on = threading.Event()

    def received(self) -> int | None:
        """The first SIGINT or SIGTERM received so far, or None."""
        with self._lock:
            while self._reader is not None and self._first is None:
                try:
                    data = self._reader.recv(256)
                except BlockingIOError:
                    break
                if not data:
                    break
                self._first = next((s for s in data if s in STOP_SIGNALS), None)
                self._sent_at = time.monotonic()
            return self._first

    def acknowledge(self) -> int:
        """The signal received (SIGINT if a ``KeyboardInterrupt`` came without one), now being acted on: it is
        not repeated any more, and further stop signals are ignored, so that a second ``KeyboardInterrupt``
        cannot break off the orderly stop under way (SIGKILL still ends the process)."""
        if self._reader is not None:  # main thread, where handlers can be set
            for signum in STOP_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)
        self._acted_on.set()
        return self.received() or signal.SIGINT

    def stop_if_received(self, what: str) -> None:
        if self.received() is not None:
            raise Interrupted(self.acknowledge(), what)

    def _repeat_until_acted_on(self) -> None:
        while not self._acted_on.wait(REPEAT_SECONDS / 10):
            signum = self.received()
            if signum is not None and time.monotonic() - self._sent_at >= REPEAT_SECONDS:
                self._sent_at = time.monotonic()
                os.kill(os.getpid(), signum)


_active: SignalRecord | None = None


@contextmanager
def stop_signals() -> Iterator[SignalRecord]:
    """Within the block SIGINT and SIGTERM raise ``KeyboardInterrupt``, are recorded, and are repeated until
    the code acts on them (:meth:`SignalRecord.acknowledge`).

    Nested blocks share the outermost record. Off the main thread, where Python cannot install signal
    handlers, the record stays empty (signals go to the main thread anyway).
    """
    global _active
    if _active is not None:
        yield _active
        return
    if threading.current_thread() is not threading.main_thread():
        yield SignalRecord(None)
        return
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    previous = {signum: signal.signal(signum, signal.default_int_handler) for signum in STOP_SIGNALS}
    _active = SignalRecord(reader)
    repeater = threading.Thread(target=_active._repeat_until_acted_on, name="repeat-stop-signal", daemon=True)
    repeater.start()
    try:
        yield _active
    finally:
        _active._acted_on.set()
        repeater.join()
        _active = None
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)
        signal.set_wakeup_fd(previous_fd)
        reader.close()
        writer.close()
