"""The body of the training assets: both protocols, MLflow logging, the sanity check, registration, the
champion rule and the asset's own files.

Kept apart from :mod:`churn_dagster.defs.models.assets` and imported only when a training step runs, so that loading the code
location (webserver, daemon, every run worker) does not pay for torch, scikit-learn, XGBoost and MLflow.
"""

import dataclasses
import json
from collections.abc import Iterator
from datetime import date

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import torch

from churn_dagster.defs.metadata import check, table
from churn_dagster.defs.mlflow_resource import MlflowResource
from churn_dagster.defs.models.config import FAMILIES, hyperparameters, model_name
from churn_dagster.defs.models.mlflow_logging import (
    epoch_logger,
    log_params,
    log_result,
    log_sklearn_like_model,
    log_torch_model,
    write_model_outputs,
)
from churn_dagster.defs.models.registry import Promotion, promote, register_version
from churn_dagster.defs.partitions import training_cohorts
from churn_dagster.defs.training_step import training_step
from churn_dagster.ml.champions import Candidate
from churn_dagster.ml.data import SequenceDataset, make_loader
from churn_dagster.ml.experiments import (
    SCHEMES,
    SchemeResult,
    classical_experiment,
    sequence_experiment,
)
from churn_dagster.ml.metrics import headline_auc
from churn_dagster.ml.train import default_device
from churn_dagster.transforms.lake import Lake, read_cohort_tables, require


def _summary_rows(results: dict[str, SchemeResult], target: str) -> list[tuple]:
    return [
        (s, r.train_users, r.test_users, headline_auc(target, r.val_metrics), headline_auc(target, r.test_metrics),
         r.test_metrics["accuracy"], r.test_metrics["f1_macro"], round(r.seconds, 1))
        for s, r in results.items()
    ]


def _sanity_check(results: dict[str, SchemeResult], target: str) -> dg.AssetCheckResult:
    """Finite weights, and every test AUC above chance. An AUC is undefined when a protocol's test users
    hold a single class (a tiny out-of-time cohort): that says nothing against the model and is reported."""
    aucs = {s: headline_auc(target, r.test_metrics) for s, r in results.items()}
    defined = {s: a for s, a in aucs.items() if np.isfinite(a)}
    weights_ok = all(finite_weights(r.model) for r in results.values())
    shown = ", ".join(f"{s} {a:.3f}" if s in defined else f"{s} undefined (one class among its test users)"
                      for s, a in aucs.items())
    return check("model_sane", weights_ok and all(a > 0.5 for a in defined.values()),
                 f"test AUCs: {shown}; weights finite: {weights_ok}")


def finite_weights(model) -> bool:
    """Every weight finite: a torch network's parameters, an MLP's layers or a linear model's coefficients
    (through a Pipeline's ``model`` step); tree ensembles have neither, and their metrics are checked instead."""
    if isinstance(model, torch.nn.Module):
        return all(torch.isfinite(p).all().item() for p in model.parameters())
    inner = getattr(model, "named_steps", {}).get("model", model)
    arrays = getattr(inner, "coefs_", None) or [getattr(inner, "coef_", np.zeros(1))]
    return all(np.isfinite(a).all() for a in arrays)


def _no_data(name: str, cohorts: list[date]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="model_sane", passed=True,
        description=f"nothing trained: no user was first seen on {cohorts[0]} .. {cohorts[-1]}; the champion stays",
    )


def _train_and_register(context, family: str, target: str, cohort: date, cohorts: list[date], mlflow_res: MlflowResource,
                        params: dict, run_scheme, log_model, lake: Lake) -> Iterator:
    """Both protocols, each in its own MLflow run; register the random-split model and apply the champion rule."""
    name = model_name(family, target)
    results, urls, model_uri, run_id = {}, {}, None, None
    tags = {"cohorts": ",".join(c.isoformat() for c in cohorts), "family": family, "target": target,
            "partition": cohort.isoformat()}
    # With a single cohort there is nothing earlier to train on: the out-of-time protocol waits for a second.
    schemes = SCHEMES if len(cohorts) > 1 else ("random",)
    with training_step(context):
        for scheme in schemes:
            with mlflow_res.start_run(context, f"{name} {cohort} ({scheme})", {**tags, "split_scheme": scheme}) as run:
                log_params({**params, "family": family, "target": target, "split_scheme": scheme})
                results[scheme] = run_scheme(scheme)
                log_result(results[scheme], target, f"{FAMILIES[family][0]} ({scheme})")
                if scheme == "random":
                    model_uri, run_id = log_model(results[scheme]), run.info.run_id
                urls[scheme] = mlflow_res.run_url(run.info.run_id)
    sanity = _sanity_check(results, target)
    random = results["random"]
    version = register_version(mlflow_res, name, run_id, model_uri, {
        "val_auc": headline_auc(target, random.val_metrics), "test_auc": headline_auc(target, random.test_metrics),
        "model_sane": sanity.passed, "cohorts": tags["cohorts"], "dagster_run_id": context.run.run_id,
    })
    if sanity.passed:
        promotion = promote(mlflow_res, version, Candidate(name, family, random.model, random.normalization),
                            random.validation)
    else:
        promotion = Promotion(name, version, False, "its sanity check failed, so it is not compared")
    context.log.info(f"{name} {promotion.describe()}")
    write_model_outputs(lake.model(name, cohort), results, {
        "family": family, "target": target, "registered_version": version, "champion": promotion.promoted,
        "champion_decision": promotion.reason, "cohorts": [c.isoformat() for c in cohorts], **params,
    })
    yield dg.MaterializeResult(
        metadata={
            "metrics": table(
                ["split", "train users", "test users", "val AUC", "test AUC", "test accuracy", "test macro F1", "seconds"],
                _summary_rows(results, target),
            ),
            **{f"mlflow_run_{scheme}": dg.MetadataValue.url(url) for scheme, url in urls.items()},
            "registered_model": dg.MetadataValue.text(f"{name} v{version}"),
            "champion": dg.MetadataValue.text(promotion.describe()),
            "cohorts": dg.MetadataValue.text(tags["cohorts"]),
        },
        check_results=[sanity],
    )


def _cohorts_with_users(cohort: date, users_of) -> tuple[list[date], list[date]]:
    """(training window, its cohorts that have users): an empty cohort is skipped, not trained on."""
    window = training_cohorts(cohort)
    return window, [c for c in window if users_of(c) > 0]


def train_sequence_model(context, family: str, target: str, cohort: date, config: dg.Config, lake: Lake,
                         mlflow: MlflowResource) -> Iterator:
    kind = "hybrid" if family == "hybrid_lstm" else "lstm"
    mlflow.check_reachable()  # before anything else: a transient outage is retried, not half-trained
    window, cohorts = _cohorts_with_users(
        cohort, lambda c: json.loads((require([lake.tensors(c)], "model training")[0] / "normalization.json")
                                     .read_text())["users"])
    if not cohorts:
        yield _no_data(model_name(family, target), window)
        return
    dirs = [lake.tensors(c) for c in cohorts]
    train_config, shape = hyperparameters(family, config)
    model_kwargs = shape.kwargs()
    device = default_device()
    params = {**train_config.__dict__, **model_kwargs, "device": str(device)}

    def run_scheme(scheme):
        progress = epoch_logger(target, context.log.info, f"{model_name(family, target)} ({scheme})")
        return sequence_experiment(kind, target, dirs, scheme, train_config, device, progress, **model_kwargs)

    def log_model(result):
        rows = result.validation
        sample = next(iter(make_loader(SequenceDataset(rows.cohorts[:1], target, normalization=result.normalization,
                                                       labelled=False), 4)))
        return log_torch_model(result, sample)

    yield from _train_and_register(context, family, target, cohort, cohorts, mlflow, params, run_scheme, log_model, lake)


def train_classical_model(context, family: str, target: str, cohort: date, config: dg.Config, lake: Lake,
                          mlflow: MlflowResource) -> Iterator:
    mlflow.check_reachable()  # before anything else: a transient outage is retried, not half-trained
    window, cohorts = _cohorts_with_users(
        cohort, lambda c: pq.read_metadata(require([lake.cohort("label_scores", c)], "model training")[0]).num_rows)
    if not cohorts:
        yield _no_data(model_name(family, target), window)
        return
    kpi = read_cohort_tables(lake, "kpi_features", cohorts)
    labels = read_cohort_tables(lake, "label_scores", cohorts)
    (settings,) = hyperparameters(family, config)
    params = dataclasses.asdict(settings)

    def run_scheme(scheme):
        return classical_experiment(family, target, kpi, labels, scheme, settings)

    def log_model(result):
        return log_sklearn_like_model(result, result.validation.kpi.head(50), "sklearn" if family == "logreg" else "xgboost")

    yield from _train_and_register(context, family, target, cohort, cohorts, mlflow, params, run_scheme, log_model, lake)

