"""What every training step runs inside: a fixed number of torch CPU threads, and the cancellation watcher.

Why one torch thread unless ``CHURN_TORCH_THREADS`` says otherwise: on the 2-core machines this project
targets, a training step shares the cores with DuckDB steps of other runs and with its own run's report and
scoring steps. torch's intra-op threads meet at every operation, so when one is descheduled the others wait
for it: on a loaded machine one and the same hybrid-LSTM epoch took 0.8 s and 29 s with 2 threads. One thread
costs about a fifth in the best case, on an idle machine (docs/BENCHMARKS.md: 1.10 s against 0.91 s per DIGMN
epoch), and never collapses. A dedicated CPU host raises it; on a GPU the threads barely matter.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import torch

from churn_dagster.training.cancellation import interrupt_when_canceled


@contextmanager
def training_step(context: dg.AssetExecutionContext, torch_threads: int) -> Iterator[None]:
    """Run the block with ``torch_threads`` (``CHURN_TORCH_THREADS``) torch threads (restored afterwards, for in-process runs) and
    interrupted again while the run is being terminated (:func:`interrupt_when_canceled`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(torch_threads)
    try:
        with interrupt_when_canceled(context):
            yield
    finally:
        torch.set_num_threads(before)
