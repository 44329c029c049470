"""The one path from a training step to the registry, which every study takes with its own fit and log
functions: every unit of the step (a protocol, a seed, a horizon, a variant) in its own MLflow run, then each
registry candidate judged by the evidence rule on its validation rows, the step's blocking sanity check, and
registration with the champion rule, each decision said in one line in the step's log.

A study supplies what differs: what a unit fits (``fit``), what its run logs (``log``, which returns the
model's URI when the unit's model is a registry candidate), which units become candidates and how each is
judged (``candidates``), and its sanity check (``sanity``). The kit keeps the order that matters: nothing is
registered before every run has ended, nothing is promoted before the sanity check, and the test split is
never read by a decision (the candidates' assessments read validation rows only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.training.ml.evidence import Assessment
from churn_dagster.training.registry import Promotion, not_registered, register_and_promote
from churn_dagster.training.step import training_step


@dataclass(frozen=True)
class Unit:
    """One MLflow run of a training step: its key (the protocol, seed, horizon or variant), run name, tags
    and params."""

    key: Any
    run_name: str
    tags: dict
    params: dict


@dataclass
class Logged:
    """A unit once its run has ended: what ``fit`` returned, the run, and the candidate model's URI (None when
    the unit's model is not a candidate)."""

    unit: Unit
    result: Any
    run_id: str
    url: str
    model_uri: str | None


@dataclass
class RegistryCandidate:
    """A model offered to the registry as ``name``: the unit whose run holds it, the evidence rule's verdict on
    its validation rows, the version's tags, and ``promote(version)``, the study's champion comparison."""

    name: str
    logged: Logged
    assessment: Assessment
    tags: dict
    promote: Callable[[str], Promotion]
    trained: bool = True  # False: nothing was fitted (one class only, say); the assessment says why


@dataclass
class Trained:
    """What a training step leaves for its study to report: every unit, every candidate's registry decision
    (by name) and the sanity check."""

    units: dict[Any, Logged]
    promotions: dict[str, Promotion]
    sanity: dg.AssetCheckResult
    candidates: list[RegistryCandidate] = field(default_factory=list)


@contextmanager
def _run(mlflow_res: MlflowResource, context: dg.AssetExecutionContext, unit: Unit) -> Iterator:
    import mlflow

    with mlflow_res.start_run(context, unit.run_name, unit.tags) as run:
        mlflow.log_params(unit.params)
        yield run


def train_and_register(context: dg.AssetExecutionContext, mlflow_res: MlflowResource, torch_threads: int, units: list[Unit],
                       fit: Callable[[Unit], Any], log: Callable[[Unit, Any], str | None],
                       candidates: Callable[[dict[Any, Logged]], list[RegistryCandidate]],
                       sanity: Callable[[dict[Any, Logged], list[RegistryCandidate]], dg.AssetCheckResult]) -> Trained:
    """Fit and log every unit in its own MLflow run (inside :func:`training_step`: the torch threads and the
    cancellation watcher; ``torch_threads`` torch threads), then register the candidates under the evidence and champion rules."""
    logged: dict[Any, Logged] = {}
    with training_step(context, torch_threads):
        for unit in units:
            with _run(mlflow_res, context, unit) as run:
                result = fit(unit)
                uri = log(unit, result)
            logged[unit.key] = Logged(unit, result, run.info.run_id, mlflow_res.run_url(run.info.run_id), uri)
        offered = candidates(logged)
    check = sanity(logged, offered)
    promotions = {}
    for candidate in offered:
        if candidate.trained:
            promotion = register_and_promote(
                mlflow_res, candidate.name, candidate.logged.run_id, candidate.logged.model_uri, candidate.assessment,
                check.passed, {**candidate.tags, "model_sane": check.passed, "dagster_run_id": context.run.run_id},
                candidate.promote)
        else:
            promotion = not_registered(mlflow_res, candidate.name, candidate.logged.run_id, candidate.assessment.reason)
        context.log.info(f"{candidate.name} {promotion.describe()}")
        promotions[candidate.name] = promotion
    return Trained(logged, promotions, check, offered)


def log_into(run_id: str, log: Callable[[], str]) -> str:
    """``log()`` inside the ended MLflow run ``run_id`` (a study that picks its candidate after all runs, as
    the trend study picks the best seed, logs the model into that seed's run); its return value."""
    import mlflow

    with mlflow.start_run(run_id=run_id):
        return log()
