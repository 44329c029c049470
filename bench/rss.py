"""Resident memory of a process, sampled from ``/proc``, and child processes run under that watch.

GNU time reports one peak per process. The data graph now runs in one process, so a stage's peak must be
read inside the stage's interval: a thread records (wall-clock time, RSS) pairs every 0.1 s, and the peak
of an interval is the largest sample taken in it. A stage shorter than the interval may show no sample of
its own; then the nearest sample before it stands in. The baselines run as children watched the same way,
so every peak in the benchmark is measured by one method (Linux only, as the benchmark machine is).
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Self

GB = 1024 ** 3


def rss_bytes(pid: int | str = "self") -> int:
    """VmRSS of ``pid``; 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            line = next(line for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1]) * 1024


class RssSampler:
    """Samples the RSS of ``pid`` on a daemon thread while the ``with`` block runs."""

    def __init__(self, pid: int | str = "self", interval: float = 0.1):
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.samples.append((time.time(), rss_bytes(self.pid)))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak_gb(self, start: float = float("-inf"), end: float = float("inf")) -> float:
        inside = [rss for t, rss in self.samples if start <= t <= end]
        before = [rss for t, rss in self.samples if t < start][-1:]
        return max(inside or before or [0]) / GB


def run_watched(cmd: list[str], log: Path, rss_limit_gb: float | None = None) -> dict:
    """Run ``cmd`` as a child, its stderr to ``log`` and its stdout beside it (a file, not a pipe, so a
    chatty child never blocks); return its wall time, peak RSS, its ``PHASE name seconds`` lines as
    ``phases`` and the JSON of its last ``RESULT `` line. Over ``rss_limit_gb`` the child is killed (so that
    a baseline cannot take the machine down) and the result says so instead; so it does when a watched child
    dies of SIGKILL under the limit (the kernel's out-of-memory killer, when other work holds memory)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    out_file = log.with_suffix(".out")
    with open(log, "w") as err, open(out_file, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        with RssSampler(proc.pid) as rss:
            while proc.poll() is None:
                if rss_limit_gb is not None and rss.peak_gb() > rss_limit_gb:
                    proc.kill()
                time.sleep(0.1)
    wall = time.perf_counter() - start
    if rss_limit_gb is not None and rss.peak_gb() > rss_limit_gb:
        return {"wall": None, "peak_gb": rss.peak_gb(), "stopped": f"over {rss_limit_gb} GB of RSS"}
    if rss_limit_gb is not None and proc.returncode == -signal.SIGKILL:
        return {"wall": None, "peak_gb": rss.peak_gb(), "stopped": f"killed by SIGKILL at {rss.peak_gb():.1f} GB of RSS"}
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}); see {log}")
    lines = out_file.read_text().splitlines()
    result = json.loads(next(line for line in reversed(lines) if line.startswith("RESULT "))[len("RESULT "):])
    phases = {line.split()[1]: float(line.split()[2]) for line in lines if line.startswith("PHASE ")}
    return {"wall": wall, "peak_gb": rss.peak_gb(), "phases": phases, **result}
