"""The body of the trend model assets: every seed in its own MLflow run, the checks, registration of the best
seed (chosen on validation) under the evidence and champion rules, and the asset's own files.

Kept apart from :mod:`churn_dagster.studies.trends.models` and imported only when a step runs, so that loading the
code location does not pay for torch, scikit-learn, XGBoost and MLflow.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import date

import dagster as dg
import mlflow
import numpy as np
import torch

from churn_dagster.core.metadata import check, frame_table, table
from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.storage.duck import atomic_dir
from churn_dagster.storage.lake import Lake, require
from churn_dagster.studies.trends.config import (
    MODEL_LABELS,
    trend_hyperparameters,
    trend_model_name,
)
from churn_dagster.studies.trends.intents import intents_folder
from churn_dagster.studies.trends.ml.data import TrendData, load_trend_data
from churn_dagster.studies.trends.ml.experiments import (
    CLASS_NAMES,
    HEADLINE,
    METRIC_LABELS,
    OTHER,
    TrendResult,
    headline,
    predict,
    summarize,
    train_trend_model,
)
from churn_dagster.studies.trends.ml.hyperparameters import (
    CLASSICAL_MODELS,
    TrendSeeds,
    settings_of,
)
from churn_dagster.studies.trends.ml.intents import IntentModel
from churn_dagster.studies.trends.partitions import TrendPartitions
from churn_dagster.studies.trends.registry import (
    DECISION_METRICS,
    input_signature,
    log_trend_model,
    promote_trend,
)
from churn_dagster.studies.trends.sql.session_events import EVENT_COLUMNS
from churn_dagster.training.kit import RegistryCandidate, Unit, log_into, train_and_register
from churn_dagster.training.ml import plots
from churn_dagster.training.ml.evidence import assess
from churn_dagster.training.ml.metrics import flatten_metrics
from churn_dagster.training.ml.sanity import finite_probabilities, finite_weights
from churn_dagster.training.ml.train import default_device


def _sanity(results: list[TrendResult], best: TrendResult, val_proba: np.ndarray) -> dg.AssetCheckResult:
    """``model_sane`` (blocking): finite weights for every seed and finite validation probabilities of the seed
    kept. Validation rows only: the test split is reported, never judged. (``beats_chance``, a warning beside
    it, says whether the evidence rule found the kept seed better than chance on enough validation users.)"""
    weights = all(finite_weights(r.model) for r in results)
    probabilities = finite_probabilities(val_proba)
    return check("model_sane", weights and probabilities,
                 f"weights finite for every seed: {weights}; validation probabilities of seed {best.seed} finite: "
                 f"{probabilities}")


def _epoch_logger(context: dg.AssetExecutionContext, name: str, task: str, seed: int):
    """Per epoch: a progress line in the run's log (with the epoch's seconds, training and validation) and the
    learning curves in the active MLflow run."""
    last = [time.perf_counter()]

    def log(epoch: int, train_loss: float, val_loss: float, val_metrics: dict, lr: float) -> None:
        value = headline(task, val_metrics)
        mlflow.log_metrics({"train_loss": train_loss, "val_loss": val_loss, "lr": lr, "val_headline_epoch": value},
                           step=epoch)
        now = time.perf_counter()
        context.log.info(f"{name} seed {seed} epoch {epoch}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                         f"val {METRIC_LABELS[HEADLINE[task]]} {value:.4f}, {now - last[0]:.1f} s")
        last[0] = now
    return log


def _log_seed(result: TrendResult, title: str, folder) -> None:
    """Metrics, the test confusion matrix and the learning curves of one seed into the active MLflow run."""
    mlflow.log_metrics({"val_headline": result.val_headline, "test_headline": result.test_headline,
                        "train_seconds": result.seconds, **{f"{s}_users": n for s, n in result.users.items()}})
    mlflow.log_metrics(flatten_metrics(result.val_metrics, "val_"))
    mlflow.log_metrics(flatten_metrics(result.test_metrics, "test_"))
    out = folder / f"seed_{result.seed}"
    out.mkdir()
    plots.plot_confusion_matrix(result.test_metrics["confusion_matrix"], CLASS_NAMES[result.task],
                                out / "confusion_matrix.png", title=f"{title}: confusion matrix (test)")
    if result.history:
        plots.plot_learning_curves(result.history, out / "learning_curves.png", result.best_epoch, title=title)
    (out / "metrics.json").write_text(json.dumps(_seed_record(result), indent=2, default=float))
    mlflow.log_artifacts(str(out))


def _seed_record(result: TrendResult) -> dict:
    return {"seed": result.seed, "validation": result.val_metrics, "test": result.test_metrics,
            "seconds": result.seconds, "epochs": result.epochs, "best_epoch": result.best_epoch,
            "users": result.users, "history": result.history}


def _seed_rows(results: list[TrendResult], task: str) -> list[tuple]:
    return [(r.seed, r.val_headline, r.test_headline, r.test_metrics["accuracy"], r.test_metrics[OTHER[task]],
             r.epochs, r.best_epoch, round(r.seconds, 2)) for r in results]


def partition_trend_data(t: TrendPartitions, lake: Lake, cohort: date) -> tuple[list[date], IntentModel, TrendData]:
    """What the models of trend partition ``cohort`` train on: its trend cohorts, its intents, and the labels
    and first-period inputs of the kept users of those cohorts."""
    cohorts = t.training_cohorts(cohort)
    intents = IntentModel.from_dict(json.loads(
        (require([intents_folder(lake, cohort)], "trend models")[0] / "intents.json").read_text()))
    return cohorts, intents, load_trend_data(lake, cohorts, intents, EVENT_COLUMNS, t.windows.first_period_days)


def train_trend_asset(context: dg.AssetExecutionContext, t: TrendPartitions, model_name: str, task: str, cohort: date,
                      config: dg.Config, lake: Lake, mlflow_res: MlflowResource) -> Iterator:
    mlflow_res.check_reachable()  # before anything else: a transient outage is retried, not half-trained
    cohorts, intents, data = partition_trend_data(t, lake, cohort)
    name = trend_model_name(model_name, task)
    yield from train_trend_models(
        context, t.graph.settings.torch_threads, model_name, task, data, intents,
        trend_hyperparameters(model_name, config), lake.model(name, cohort), name,
        [c.isoformat() for c in cohorts], {"partition": cohort.isoformat()}, mlflow_res)


def train_trend_models(context: dg.AssetExecutionContext, torch_threads: int, model_name: str, task: str,
                       data: TrendData, intents: IntentModel, params: tuple, folder, name: str, cohorts: list[str],
                       tags: dict, mlflow_res: MlflowResource) -> Iterator:
    """Train ``model_name`` for ``task`` on ``data`` once per seed, register the seed chosen on validation as
    ``name`` under the evidence and champion rules, and write the summary into ``folder``: the body of the NCM
    trend assets and of an event log's (``components/event_log_trends.py``)."""
    seeds = settings_of(params, TrendSeeds).seeds
    device = torch.device("cpu") if model_name in CLASSICAL_MODELS else default_device()
    hyper = {k: v for p in params if not isinstance(p, TrendSeeds) for k, v in dataclasses.asdict(p).items()
             if k != "seed"}
    tags = {"cohorts": ",".join(cohorts), "trend_model": model_name, "task": task, **tags}
    where = tags.get("partition", tags.get("event_log", ""))
    context.log.info(f"{name} {where}: {len(data.users)} users of {len(cohorts)} cohorts, {intents.k} intents, "
                     f"seeds {seeds}, on {device}")
    title = f"{MODEL_LABELS[model_name][0]}, {task}"
    policy = mlflow_res.evidence_policy
    units = [Unit(seed, f"{name} {where} seed {seed}", {**tags, "seed": str(seed)},
                  {**hyper, "seed": seed, "device": str(device), "users": len(data.users)}) for seed in seeds]
    kept: dict = {}  # the kept seed's validation probabilities and its beats_chance check, for the sanity check

    def fit(unit: Unit) -> TrendResult:
        return train_trend_model(model_name, task, data, unit.key, params, device,
                                 _epoch_logger(context, name, task, unit.key))

    def candidates(logged: dict) -> list[RegistryCandidate]:
        # The seed is chosen on validation; its model is logged into its own run.
        best = max((u.result for u in logged.values()), key=lambda r: np.nan_to_num(r.val_headline, nan=-np.inf))
        unit = logged[best.seed]
        unit.model_uri = log_into(unit.run_id, lambda: log_trend_model(best, data, intents))
        rows = data.rows("validation")
        kept["proba"] = predict(model_name, task, best.model, best.scaling, data, rows)
        assessment = assess(policy, DECISION_METRICS[task], data.labels(task)[rows], kept["proba"], CLASS_NAMES[task])
        kept["chance"] = dg.AssetCheckResult(check_name="beats_chance", passed=assessment.registrable,
                                             severity=dg.AssetCheckSeverity.WARN,
                                             description=f"seed {best.seed}: {assessment.reason}")
        return [RegistryCandidate(name, unit, assessment, {
            "val_headline": best.val_headline, "test_headline": best.test_headline, "seed": best.seed,
            "metric": METRIC_LABELS[HEADLINE[task]], "cohorts": tags["cohorts"],
            "inputs": input_signature(model_name, data)},
            lambda version: promote_trend(mlflow_res, name, version, best, data, policy))]

    def sanity(logged: dict, offered: list[RegistryCandidate]) -> dg.AssetCheckResult:
        return _sanity([u.result for u in logged.values()], offered[0].logged.result, kept["proba"])

    with atomic_dir(folder) as out:
        trained = train_and_register(context, mlflow_res, torch_threads, units, fit,
                                     lambda unit, result: _log_seed(result, title, out), candidates, sanity)
        results = [u.result for u in trained.units.values()]
        best = trained.candidates[0].logged.result
        promotion = trained.promotions[name]
        summary = summarize(results)
        urls = {seed: u.url for seed, u in trained.units.items()}
        (out / "summary.json").write_text(json.dumps({
            "model": model_name, "task": task, "cohorts": cohorts,
            "summary": summary.to_dict("records")[0], "best_seed": best.seed,
            "registered_version": promotion.version, "champion": promotion.promoted,
            "champion_decision": promotion.describe(), "mlflow_runs": urls,
            "hyperparameters": {**hyper, "seeds": seeds}, "users": best.users,
        }, indent=2, default=float))
    metric = METRIC_LABELS[HEADLINE[task]]
    yield dg.MaterializeResult(
        metadata={
            "seeds": table(["seed", f"val {metric}", f"test {metric}", "test accuracy",
                            f"test {METRIC_LABELS[OTHER[task]]}", "epochs", "best epoch", "seconds"],
                           _seed_rows(results, task)),
            "summary": frame_table(summary.drop(columns=["model", "task"])),
            "test_mean": dg.MetadataValue.float(float(summary["test_mean"].iloc[0])),
            "test_std": dg.MetadataValue.float(float(summary["test_std"].iloc[0])),
            **{f"mlflow_run_seed_{seed}": dg.MetadataValue.url(url) for seed, url in urls.items()},
            "registered_model": dg.MetadataValue.text(f"{name} v{promotion.version} (seed {best.seed})"
                                                      if promotion.version else f"{name}: not registered"),
            "champion": dg.MetadataValue.text(promotion.describe()),
            "users": table(["split", "users"], list(best.users.items())),
            "cohorts": dg.MetadataValue.text(tags["cohorts"]),
            "path": dg.MetadataValue.path(str(folder / "summary.json")),
        },
        check_results=[trained.sanity, kept["chance"]],
    )
