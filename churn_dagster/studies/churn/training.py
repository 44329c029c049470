"""The body of the training assets: both protocols, MLflow logging, the sanity check, the evidence rule,
registration, the champion rule and the asset's own files.

Kept apart from :mod:`churn_dagster.studies.churn.models` and imported only when a training step runs, so that loading the code
location (webserver, daemon, every run worker) does not pay for torch, scikit-learn, XGBoost and MLflow.
"""

import dataclasses
from collections.abc import Iterator
from datetime import date

import dagster as dg
import pyarrow.parquet as pq

from churn_dagster.core.metadata import check, table
from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.core.partitions import Partitions
from churn_dagster.domain.engagement import LEVEL_NAMES
from churn_dagster.stages.tensors.ml.data import (
    CohortTensors,
    SequenceDataset,
    make_loader,
)
from churn_dagster.storage.lake import Lake, read_cohort_tables, require
from churn_dagster.studies.churn.config import FAMILIES, hyperparameters, model_name
from churn_dagster.studies.churn.ml.experiments import (
    Protocol,
    SchemeResult,
    classical_experiment,
    protocols,
    sequence_experiment,
)
from churn_dagster.studies.churn.mlflow_outputs import log_result, write_model_outputs
from churn_dagster.training.kit import RegistryCandidate, Unit, train_and_register
from churn_dagster.training.ml.champions import Candidate
from churn_dagster.training.ml.evidence import AUC, Assessment, EvidencePolicy, assess
from churn_dagster.training.ml.metrics import BINARY_NAMES, headline_auc
from churn_dagster.training.ml.sanity import finite_probabilities, finite_weights
from churn_dagster.training.ml.train import default_device
from churn_dagster.training.mlflow_logging import (
    epoch_logger,
    log_sklearn_like_model,
    log_torch_model,
)
from churn_dagster.training.registry import promote


def _summary_rows(results: dict[str, SchemeResult], target: str) -> list[tuple]:
    return [
        (s, r.train_users, r.test_users, headline_auc(target, r.val_metrics), headline_auc(target, r.test_metrics),
         r.test_metrics["accuracy"], r.test_metrics["f1_macro"], round(r.seconds, 1))
        for s, r in results.items()
    ]


def _sanity_check(results: dict[str, SchemeResult], family: str, assessment: Assessment) -> dg.AssetCheckResult:
    """Finite weights, and finite probabilities in [0, 1] on every protocol's validation users; with the
    evidence rule's verdict on the registered model. Validation rows only: the test split is reported, never
    judged."""
    weights_ok = all(finite_weights(r.model) for r in results.values())
    valid = {s: finite_probabilities(r.validation.proba(family, r.model, r.normalization)) for s, r in results.items()}
    shown = ", ".join(f"{s} {'finite' if ok else 'NOT finite'}" for s, ok in valid.items())
    return check("model_sane", weights_ok and all(valid.values()),
                 f"weights finite: {weights_ok}; validation probabilities: {shown}; registry: {assessment.reason}")


def _no_data(name: str, cohorts: list[date]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="model_sane", passed=True,
        description=f"nothing trained: no user was first seen on {cohorts[0]} .. {cohorts[-1]}; the champion stays",
    )


def _assess(result: SchemeResult, family: str, target: str, policy: EvidencePolicy) -> Assessment:
    rows = result.validation
    names = BINARY_NAMES if target == "binary" else LEVEL_NAMES
    return assess(policy, AUC, rows.y, rows.proba(family, result.model, result.normalization), names)


def _train_and_register(context, p: Partitions, family: str, target: str, cohort: date, runs: list[Protocol],
                        mlflow_res: MlflowResource, params: dict, run_scheme, log_model, lake: Lake) -> Iterator:
    """Every protocol in its own MLflow run; the random-split model is the registry's candidate (the training
    kit's evidence and champion rules)."""
    name = model_name(family, target)
    window = runs[0].cohorts
    tags = {"cohorts": ",".join(c.isoformat() for c in window), "family": family, "target": target,
            "partition": cohort.isoformat()}
    units = [Unit(p.scheme, f"{name} {cohort} ({p.scheme})",
                  {**tags, "split_scheme": p.scheme, "train_cohorts": ",".join(c.isoformat() for c in p.train_cohorts)},
                  {**params, "family": family, "target": target, "split_scheme": p.scheme}) for p in runs]
    protocol = {p.scheme: p for p in runs}

    def log(unit: Unit, result: SchemeResult) -> str | None:
        log_result(result, target, f"{FAMILIES[family][0]} ({unit.key})")
        return log_model(result) if unit.key == "random" else None

    def candidates(logged: dict) -> list[RegistryCandidate]:
        random = logged["random"]
        rows = random.result.validation
        rows.policy = mlflow_res.evidence_policy  # the champion is judged on the same classes
        assessment = _assess(random.result, family, target, rows.policy)
        return [RegistryCandidate(name, random, assessment, {
            "val_auc": assessment.score, "test_auc": headline_auc(target, random.result.test_metrics),
            "cohorts": tags["cohorts"], "partition": cohort.isoformat(),
            "labels_closed": p.calendar.labels_closed(window[-1]).isoformat()},
            lambda version: promote(mlflow_res, version, Candidate(name, family, random.result.model,
                                                                   random.result.normalization), rows))]

    def sanity(logged: dict, offered: list[RegistryCandidate]) -> dg.AssetCheckResult:
        return _sanity_check({k: u.result for k, u in logged.items()}, family, offered[0].assessment)

    trained = train_and_register(context, mlflow_res, p.settings.torch_threads, units, lambda unit: run_scheme(protocol[unit.key]), log,
                                 candidates, sanity)
    results = {k: u.result for k, u in trained.units.items()}
    promotion = trained.promotions[name]
    write_model_outputs(lake.model(name, cohort), results, {
        "family": family, "target": target, "registered_version": promotion.version, "champion": promotion.promoted,
        "champion_decision": promotion.describe(), "cohorts": [c.isoformat() for c in window],
        "protocol_cohorts": {p.scheme: {"train": [c.isoformat() for c in p.train_cohorts],
                                        "test": [c.isoformat() for c in p.test_cohorts]} for p in runs}, **params,
    })
    yield dg.MaterializeResult(
        metadata={
            "metrics": table(
                ["split", "train users", "test users", "val AUC", "test AUC", "test accuracy", "test macro F1", "seconds"],
                _summary_rows(results, target),
            ),
            **{f"mlflow_run_{scheme}": dg.MetadataValue.url(u.url) for scheme, u in trained.units.items()},
            "registered_model": dg.MetadataValue.text(f"{name} v{promotion.version}" if promotion.version
                                                      else f"{name}: not registered"),
            "champion": dg.MetadataValue.text(promotion.describe()),
            "cohorts": dg.MetadataValue.text(tags["cohorts"]),
            "out_of_time_cohorts": dg.MetadataValue.text(
                ",".join(c.isoformat() for c in runs[1].train_cohorts) if len(runs) > 1 else
                "none yet: no cohort's labels had closed when this cohort's observation window did"),
        },
        check_results=[trained.sanity],
    )


def _protocols_with_users(p: Partitions, cohort: date, users_of) -> list[Protocol]:
    """The partition's protocols over its cohorts that have users (an empty cohort is skipped, not trained on);
    none when its own window has no user."""
    window = [c for c in p.training_cohorts(cohort) if users_of(c) > 0]
    earlier = [c for c in p.out_of_time_cohorts(cohort) if users_of(c) > 0]
    if not window:
        return []
    return protocols(window, earlier if window[-1] == cohort else [])


def train_sequence_model(context, p: Partitions, family: str, target: str, cohort: date, config: dg.Config, lake: Lake,
                         mlflow: MlflowResource) -> Iterator:
    kind = "hybrid" if family == "hybrid_lstm" else "lstm"
    mlflow.check_reachable()  # before anything else: a transient outage is retried, not half-trained
    # Every tensor folder this step reads resolved once, for both protocols and the registry's comparison.
    read = sorted(set(p.training_cohorts(cohort)) | set(p.out_of_time_cohorts(cohort)))
    tensors = {c: CohortTensors(path) for c, path in zip(read, require([lake.tensors(c) for c in read],
                                                                          "model training"), strict=True)}
    runs = _protocols_with_users(p, cohort, lambda c: tensors[c].meta["users"])
    if not runs:
        yield _no_data(model_name(family, target), p.training_cohorts(cohort))
        return
    train_config, shape = hyperparameters(family, config)
    model_kwargs = shape.kwargs()
    device = default_device()
    params = {**train_config.__dict__, **model_kwargs, "device": str(device)}

    def run_scheme(protocol):
        progress = epoch_logger(target, context.log.info, f"{model_name(family, target)} ({protocol.scheme})")
        return sequence_experiment(kind, target, tensors, protocol, train_config, device, progress, **model_kwargs)

    def log_model(result):
        rows = result.validation
        sample = next(iter(make_loader(SequenceDataset(rows.cohorts[:1], target, normalization=result.normalization,
                                                       labelled=False), 4)))
        return log_torch_model(result, sample)

    yield from _train_and_register(context, p, family, target, cohort, runs, mlflow, params, run_scheme, log_model,
                                   lake)


def train_classical_model(context, p: Partitions, family: str, target: str, cohort: date, config: dg.Config, lake: Lake,
                          mlflow: MlflowResource) -> Iterator:
    mlflow.check_reachable()  # before anything else: a transient outage is retried, not half-trained
    read = sorted(set(p.training_cohorts(cohort)) | set(p.out_of_time_cohorts(cohort)))
    rows = {c: pq.read_metadata(path).num_rows for c, path in zip(
        read, require([lake.cohort("label_scores", c) for c in read], "model training"), strict=True)}
    runs = _protocols_with_users(p, cohort, rows.get)
    if not runs:
        yield _no_data(model_name(family, target), p.training_cohorts(cohort))
        return
    cohorts = sorted(set().union(*(p.cohorts for p in runs)))
    kpi = read_cohort_tables(lake, "kpi_features", cohorts)
    labels = read_cohort_tables(lake, "label_scores", cohorts)
    (settings,) = hyperparameters(family, config)
    params = dataclasses.asdict(settings)

    def run_scheme(protocol):
        return classical_experiment(family, target, kpi, labels, protocol, settings)

    def log_model(result):
        return log_sklearn_like_model(result, result.validation.kpi.head(50), "sklearn" if family == "logreg" else "xgboost")

    yield from _train_and_register(context, p, family, target, cohort, runs, mlflow, params, run_scheme, log_model,
                                   lake)
