"""Predictive fidelity of the synthetic twin: the four churn families on a generated set beside the thesis's
real-log figures, and what each behavioural mechanism contributes (docs/SYNTHETIC.md).

For each variant (the default twin, and the twin with some mechanisms switched off), the command generates the
six files, builds the data graph (``churn-dagster materialize --data-only``) and trains the four churn families
for both targets with their default hyperparameters on the random protocol of the last labelled cohort's
partition, printing test AUCs (binary ROC AUC; macro one-vs-rest over the five levels):

    python -m bench.twin_fidelity --work DIR --users 200000
    python -m bench.twin_fidelity --work DIR --users 50000 --variants default,-habits,-reactions,-all

A variant ``-NAME`` switches off one mechanism (``churn-dagster generate --without NAME``), ``-all`` every one.
Outputs stay under ``--work``; an existing variant folder is reused when its data graph is complete.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.model_protocols import TARGETS, model_auc, partition_protocols
from churn_dagster.settings import settings_from_env
from churn_dagster.stages.tensors.ml.data import CohortTensors
from churn_dagster.storage.lake import Lake
from churn_dagster.studies.churn.config import FAMILIES
from churn_dagster.synth.mechanisms import MECHANISMS

# Guo (2025), the thesis's test AUCs on the real log (../shared/seeds/thesis_guo_2025_ncm_churn.txt).
THESIS = {
    "binary": {"logreg": 0.7305, "xgboost": 0.7479, "lstm": 0.7733, "hybrid_lstm": 0.7821},
    "level": {"logreg": 0.7838, "xgboost": 0.8031, "lstm": 0.8234, "hybrid_lstm": 0.8333},
}
TOLERANCE = 0.02


def _switched_off(variant: str) -> list[str]:
    if variant == "default":
        return []
    name = variant.removeprefix("-")
    if name == "all":
        return list(MECHANISMS)
    if not variant.startswith("-") or name not in MECHANISMS:
        raise SystemExit(f"--variants: expected default, -all or -NAME with NAME one of {', '.join(MECHANISMS)}; "
                         f"got {variant!r}")
    return [name]


def _build(folder: Path, users: int, off: list[str]) -> None:
    """Generate and build the data graph of one variant, unless a previous run finished it."""
    done = folder / "graph.done"
    if done.exists():
        return
    cli = str(Path(sys.executable).with_name("churn-dagster"))
    env = {**os.environ, "DAGSTER_HOME": str(folder / "home")}
    (folder / "home").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).resolve().parents[1] / "dagster.yaml", folder / "home" / "dagster.yaml")
    generate = [cli, "generate", "--out", str(folder / "source"), "--users", str(users)]
    subprocess.run(generate + (["--without", ",".join(off)] if off else []), check=True, env=env,
                   stdout=subprocess.DEVNULL)
    subprocess.run([cli, "materialize", "--source", str(folder / "source"), "--data-dir", str(folder / "data"),
                    "--data-only"], check=True, env=env, stdout=subprocess.DEVNULL)
    done.touch()


def _aucs(data_dir: Path) -> dict[tuple[str, str], float]:
    settings = settings_from_env()
    calendar = settings.calendar
    lake = Lake(data_dir)
    random = partition_protocols(calendar, settings.training_cohorts)[0]
    tensors = {c: CohortTensors(lake.tensors(c)) for c in random.cohorts}
    found = {}
    for family in FAMILIES:
        for target in TARGETS:
            started = time.monotonic()
            found[family, target] = model_auc(family, target, random, lake, tensors, None)
            print(f"  {family} {target}: {found[family, target]:.4f} ({time.monotonic() - started:.0f} s)",
                  flush=True)
    return found


def _ordered(values: list[float]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--variants", default="default", help="comma-separated: default, -all, -NAME")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    off = {v: _switched_off(v) for v in variants}
    results = {}
    for variant in variants:
        folder = args.work / f"{args.users}-{variant.removeprefix('-') if variant != 'default' else 'default'}"
        print(f"{variant}: building {folder}", flush=True)
        _build(folder, args.users, off[variant])
        results[variant] = _aucs(folder / "data")
    print(f"\n{args.users:,} users, random protocol of the last labelled cohort, default hyperparameters\n")
    print("| model | target | thesis (real log) | " + " | ".join(variants) + " |")
    print("|---|---|---|" + "---|" * len(variants))
    for target in TARGETS:
        for family, (label, _) in FAMILIES.items():
            cells = []
            for v in variants:
                value = results[v][family, target]
                mark = " ✓" if v == "default" and abs(value - THESIS[target][family]) <= TOLERANCE else ""
                cells.append(f"{value:.4f}{mark}")
            print(f"| {label} | {target} | {THESIS[target][family]:.4f} | " + " | ".join(cells) + " |")
    for target in TARGETS:
        order = [results["default"][f, target] for f in FAMILIES] if "default" in results else []
        if order:
            print(f"{target}: the thesis's order (LR < XGBoost < LSTM < hybrid) "
                  f"{'holds' if _ordered(order) else 'does not hold'} on the default twin")


if __name__ == "__main__":
    main()
