"""A terminated run's step is interrupted again and again until it stops: Dagster sends one SIGINT, and
Python drops it when it lands in a garbage-collector callback."""

import signal
import time
from types import SimpleNamespace

import dagster as dg
import pytest

from churn_dagster.training import cancellation
from churn_dagster.training.cancellation import GRACE_SECONDS, REPEAT_SECONDS, interrupt_when_canceled, interrupt_while


@pytest.fixture(autouse=True)
def _interrupts_raise():
    """SIGINT raises KeyboardInterrupt here even when pytest was started in the background by a shell, which
    makes the process ignore SIGINT from its start (then Python installs no handler of its own)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def _swallow_first_interrupt(caught: list[float], seconds: float = 5) -> None:
    """Sleep until interrupted; the first interrupt is lost, as in a garbage-collector callback. Returns
    after ``seconds`` without a second one."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            while time.monotonic() < deadline:
                time.sleep(0.005)
        except KeyboardInterrupt:
            caught.append(time.monotonic())
            if len(caught) > 1:
                raise


def test_a_lost_interrupt_is_sent_again_until_the_step_stops(monkeypatch):
    sent: list[float] = []
    real_kill = cancellation.os.kill

    def kill_and_record(pid: int, signum: int) -> None:
        sent.append(time.monotonic())
        real_kill(pid, signum)

    monkeypatch.setattr(cancellation.os, "kill", kill_and_record)
    caught: list[float] = []
    start = time.monotonic()
    canceled = lambda: time.monotonic() - start > 0.1
    with pytest.raises(KeyboardInterrupt), interrupt_while(canceled, poll_seconds=0.02, repeat_seconds=0.2,
                                                           grace_seconds=0.5):
        _swallow_first_interrupt(caught)
    assert len(caught) == 2 and len(sent) == 2
    # Not before the run was canceled, and not before Dagster's own interrupt had its grace to arrive: a step
    # that stopped itself first would free its pool slot for the canceled run's next step.
    assert sent[0] - start >= 0.1 + 0.5
    # The step had its repeat interval to unwind. Judged on when the interrupts were sent, not when they were
    # caught: the main thread notices each one after a scheduling delay of its own, so the catches' spacing
    # can be a little shorter than the sends'.
    assert sent[1] - sent[0] >= 0.2
    assert sent[0] <= caught[0] <= sent[1] <= caught[1]


def test_nothing_is_sent_while_the_run_goes_on_nor_after_the_block():
    with interrupt_while(lambda: False, poll_seconds=0.01):
        time.sleep(0.1)
    canceled_later = time.monotonic() + 0.05
    with interrupt_while(lambda: time.monotonic() > canceled_later, poll_seconds=0.01):
        pass  # left before the run was canceled
    time.sleep(0.2)  # a KeyboardInterrupt here would fail the test


def test_the_run_status_in_the_instance_is_what_is_watched():
    @dg.asset
    def one() -> int:
        return 1

    with dg.DagsterInstance.ephemeral() as instance:
        run = dg.materialize([one], instance=instance).dagster_run
        context = SimpleNamespace(instance=instance, run=run)
        with interrupt_when_canceled(context):
            time.sleep(1.2)  # SUCCESS: nothing to stop
        instance.report_run_canceling(run)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.CANCELING
        caught: list[float] = []
        with pytest.raises(KeyboardInterrupt), interrupt_when_canceled(context):
            _swallow_first_interrupt(caught, seconds=GRACE_SECONDS + REPEAT_SECONDS + 3)
        assert len(caught) == 2


def test_a_training_step_uses_the_configured_torch_threads_and_restores_them(monkeypatch):
    import torch

    from churn_dagster.training.step import training_step

    # What training_step reads of an AssetExecutionContext; the watcher's status polls fail and mean "go on".
    context = SimpleNamespace(instance=None, run=SimpleNamespace(run_id="r"))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with training_step(context, 1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
