"""Time per training epoch and throughput of the LSTM and the hybrid LSTM on one machine.

    python -m bench.train_epoch --data-dir DIR [--epochs 3] [--device cpu|cuda] [--batch-size 128]
        [--num-workers 0] [--kinds lstm,hybrid]

Trains each network for a few epochs on the churn target, on the random-split training users of every cohort
with tensors under DIR (SPEC defaults: batch 128, hidden 128), normalised as a model trained on those cohorts
is (``fit_normalization``), and reports the median seconds per epoch and sequences per second
(data loading included), plus the time to score the test users. The first epoch is reported apart: it
includes memory-map faults and, on a GPU, kernel selection. On CUDA the training runs as the assets run it
there: float16 autocast with a gradient scaler, batches from pinned memory; ``--batch-size`` sizes the
batches for the card (the models' default is the SPEC's 128) and ``--num-workers`` adds loader processes.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from churn_dagster.stages.tensors.ml.data import (
    CohortTensors,
    SequenceDataset,
    fit_normalization,
    make_loader,
)
from churn_dagster.training.ml.hyperparameters import TrainConfig
from churn_dagster.training.ml.train import predict_proba, train_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--kinds", default="lstm,hybrid", help="networks to train, comma-separated")
    args = parser.parse_args()
    dirs = sorted(p for p in (args.data_dir / "tensors").glob("cohort=*") if (p / "normalization.json").exists())
    cohorts = [CohortTensors(d) for d in dirs]
    norm = fit_normalization(cohorts)
    train, val, test = (SequenceDataset(cohorts, "binary", split=s, normalization=norm)
                        for s in ("train", "validation", "test"))
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    print(f"{len(dirs)} cohorts ({dirs[0].name} .. {dirs[-1].name}), {len(train)} training users, "
          f"device {args.device} ({device_name}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {args.batch_size}, {args.num_workers} loader workers")
    print("| network | first epoch s | epoch s (median of rest) | sequences/s (median) | score test users/s |")
    print("|---|---|---|---|---|")
    for kind in args.kinds.split(","):
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, seed=1,
                             num_workers=args.num_workers)
        fit = train_model(kind, "binary", train, val, config, args.device)
        seconds = [r["train_seconds"] for r in fit.history_rows()]
        speed = [r["sequences_per_second"] for r in fit.history_rows()]
        start = time.perf_counter()
        predict_proba(fit.model, make_loader(test, max(512, args.batch_size)), args.device)
        scoring = len(test) / (time.perf_counter() - start)
        rest = seconds[1:] or seconds
        print(f"| {kind} | {seconds[0]:.2f} | {statistics.median(rest):.2f} | "
              f"{statistics.median(speed[1:] or speed):.0f} | {scoring:.0f} |")


if __name__ == "__main__":
    main()
