"""Time per training epoch of the trend networks (DIGMN, its static ablation and the two LSTM baselines).

    python -m bench.trend_epoch --data-dir DIR --partition 2019-11-03 [--epochs 4] [--device cpu|cuda]

Loads the inputs of one trend partition exactly as its training assets do (the kept users of its trend
cohorts, the partition's intents), trains each network for ``--epochs`` epochs with early stopping off, and
reports the first epoch apart and the median of the rest: seconds of the training pass (data loading
included) and training users per second, plus the seconds of one validation pass. DIR must hold the trend
data of the partition (``trend_data_job``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from churn_dagster.core.partitions import Partitions
from churn_dagster.domain.calendar import parse_day
from churn_dagster.settings import settings_from_env
from churn_dagster.storage.lake import Lake
from churn_dagster.studies.trends.ml.data import MacroScaling, TrendBatches
from churn_dagster.studies.trends.ml.experiments import CLASS_NAMES
from churn_dagster.studies.trends.ml.hyperparameters import BaselineShape, SessionWindow
from churn_dagster.studies.trends.ml.networks import build_network, trend_loader
from churn_dagster.studies.trends.partitions import TrendPartitions
from churn_dagster.studies.trends.training import partition_trend_data
from churn_dagster.training.ml.hyperparameters import DigmnConfig, TrainConfig
from churn_dagster.training.ml.train import evaluate, fit, seed_everything

NETWORKS = ("digmn", "digmn_static", "multichannel", "activity_lstm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--partition", required=True)
    parser.add_argument("--task", default="day", choices=sorted(CLASS_NAMES))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    lake, cohort = Lake(args.data_dir), parse_day(args.partition)
    start = time.perf_counter()
    _, intents, data = partition_trend_data(TrendPartitions(Partitions(settings_from_env())), lake, cohort)
    loading = time.perf_counter() - start
    train_rows, val_rows = data.rows("train"), data.rows("validation")
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine()
    print(f"partition {cohort}: {len(data.users)} users ({int(train_rows.sum())} training), "
          f"{len(data.behaviour)} sessions, K = {intents.k}; inputs loaded in {loading:.1f} s; task {args.task}; "
          f"device {args.device} ({device_name}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| network | parameters | first epoch s | epoch s (median of rest) | training users/s | validation pass s |")
    print("|---|---|---|---|---|---|")
    scaling = MacroScaling.fit(data.macro, train_rows)
    window = SessionWindow().max_sessions
    config = replace(TrainConfig.digmn(), epochs=args.epochs, early_stop_patience=None)
    for name in NETWORKS:
        seed_everything(0)
        digmn = DigmnConfig(dynamic=name == "digmn") if name.startswith("digmn") else None
        model = build_network(name, data, CLASS_NAMES[args.task], BaselineShape().hidden_size, window, digmn)
        train = trend_loader(TrendBatches(data, args.task, scaling, train_rows, window), model, config.batch_size,
                             shuffle=True, seed=0)
        val = trend_loader(TrendBatches(data, args.task, scaling, val_rows, window), model, 512)
        history = fit(model, train, val, config, args.device).history
        seconds = [r.train_seconds for r in history]
        speed = [r.sequences_per_second for r in history]
        start = time.perf_counter()
        evaluate(model, val, torch.device(args.device))
        validation = time.perf_counter() - start
        parameters = sum(p.numel() for p in model.parameters())
        print(f"| {name} | {parameters:,} | {seconds[0]:.2f} | {statistics.median(seconds[1:] or seconds):.2f} | "
              f"{statistics.median(speed[1:] or speed):,.0f} | {validation:.2f} |")


if __name__ == "__main__":
    main()
