"""The tables of docs/MODELS.md that compare evaluation setups on one materialized data graph:

- ``protocols``: every churn and level model of the last labelled cohort's partition under the out-of-time
  protocol as deployed (trained on the cohorts whose labels had closed when the test cohort was scored) and
  under the earlier adjacent-cohort variant (trained on the cohorts right before it, whose label periods reach
  into the test cohort's), with the random split beside them;
- ``leaky``: the classical models with and without ``mean_log_creator_followers`` (the creators' follower
  counts, measured after the log), from a data graph built with ``CHURN_USE_LEAKY_COLUMNS=1``.

    python -m bench.model_protocols protocols --data-dir DIR [--epochs 10]
    python -m bench.model_protocols leaky --data-dir DIR_BUILT_WITH_LEAKY_COLUMNS

The calendar and the training window come from the same ``CHURN_*`` settings the graph was built with.
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import timedelta
from pathlib import Path

from churn_dagster.domain.calendar import Calendar
from churn_dagster.domain.snapshots import LEAKY_FEATURES
from churn_dagster.settings import settings_from_env
from churn_dagster.stages.tensors.ml.data import CohortTensors
from churn_dagster.storage.lake import Lake, read_cohort_tables
from churn_dagster.studies.churn.config import DEFAULTS, FAMILIES
from churn_dagster.studies.churn.ml.experiments import (
    Protocol,
    adjacent_protocol,
    classical_experiment,
    protocols,
    sequence_experiment,
)
from churn_dagster.training.ml.metrics import headline_auc

TARGETS = ("binary", "level")


def partition_protocols(calendar: Calendar, n: int) -> list[Protocol]:
    """Random, deployed out-of-time and adjacent out-of-time protocols of the last labelled cohort."""
    last = calendar.last_labelled_cohort
    window = [c for c in (last - timedelta(days=k) for k in range(n - 1, -1, -1)) if c >= calendar.first_day]
    earlier = calendar.cohorts_labelled_by(calendar.observation_closed(last), n)
    return [*protocols(window, earlier), adjacent_protocol(window)]


def model_auc(family: str, target: str, protocol: Protocol, lake: Lake, tensors: dict, epochs: int | None,
         drop: tuple[str, ...] = ()) -> float:
    """Test AUC (macro one-vs-rest for the levels) of one model under one protocol."""
    if family in ("lstm", "hybrid_lstm"):
        config, shape = DEFAULTS[family]
        if epochs is not None:
            config = dataclasses.replace(config, epochs=epochs)
        kind = "hybrid" if family == "hybrid_lstm" else "lstm"
        result = sequence_experiment(kind, target, tensors, protocol, config, "cpu", **shape.kwargs())
    else:
        kpi = read_cohort_tables(lake, "kpi_features", list(protocol.cohorts)).drop(columns=list(drop))
        labels = read_cohort_tables(lake, "label_scores", list(protocol.cohorts))
        result = classical_experiment(family, target, kpi, labels, protocol, DEFAULTS[family][0])
    return headline_auc(target, result.test_metrics)


def protocols_table(lake: Lake, calendar: Calendar, n: int, epochs: int | None) -> None:
    runs = partition_protocols(calendar, n)
    read = sorted(set().union(*(p.cohorts for p in runs)))
    tensors = {c: CohortTensors(lake.tensors(c)) for c in read}
    for p in runs:
        print(f"{p.scheme}: train {p.train_cohorts[0]} .. {p.train_cohorts[-1]}, test {p.test_cohorts[0]} .. "
              f"{p.test_cohorts[-1]}")
    print("\n| model | target | random split | out of time, deployed | out of time, adjacent (optimistic) |")
    print("|---|---|---|---|---|")
    for family, (label, _) in FAMILIES.items():
        for target in TARGETS:
            aucs = [model_auc(family, target, p, lake, tensors, epochs) for p in runs]
            print(f"| {label} | {target} | " + " | ".join(f"{a:.4f}" for a in aucs) + " |")


def leaky_table(lake: Lake, calendar: Calendar, n: int) -> None:
    random, deployed, _ = partition_protocols(calendar, n)
    others = tuple(f for f in LEAKY_FEATURES if f != "mean_log_creator_followers")
    print("| model | target | random without | random with | out of time without | out of time with |")
    print("|---|---|---|---|---|---|")
    for family in ("logreg", "xgboost"):
        for target in TARGETS:
            cells = [model_auc(family, target, p, lake, {}, None, drop=others + extra)
                     for p in (random, deployed) for extra in (("mean_log_creator_followers",), ())]
            print(f"| {FAMILIES[family][0]} | {target} | " + " | ".join(f"{a:.4f}" for a in cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=("protocols", "leaky"))
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=None, help="cap the sequence models' epochs")
    args = parser.parse_args()
    settings = settings_from_env()
    calendar = settings.calendar
    lake = Lake(args.data_dir)
    if args.table == "protocols":
        protocols_table(lake, calendar, settings.training_cohorts, args.epochs)
    else:
        leaky_table(lake, calendar, settings.training_cohorts)


if __name__ == "__main__":
    main()
