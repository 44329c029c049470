"""The body of the continuation model assets: one MLflow run per horizon, the sanity check, the evidence rule,
registration, the champion rule and the asset's own files (read by ``continuation_report``).

Imported only when a training step runs, so loading the code location does not pay for torch, scikit-learn,
XGBoost and MLflow.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd

from churn_dagster.core.metadata import check, table
from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.core.partitions import Partitions
from churn_dagster.stages.tensors.ml.data import collate
from churn_dagster.storage.duck import atomic_path
from churn_dagster.storage.lake import Lake, read_cohort_tables
from churn_dagster.studies.continuation.config import (
    FAMILIES,
    asset_name,
    registered_name,
)
from churn_dagster.studies.continuation.ml.data import HORIZONS_MIN, PrefixDataset, Prefixes
from churn_dagster.studies.continuation.ml.models import (
    HorizonResult,
    train_prefix_lstm,
    train_tabular,
)
from churn_dagster.training.kit import Logged, RegistryCandidate, Unit, train_and_register
from churn_dagster.training.ml import plots
from churn_dagster.training.ml.champions import Candidate, EvaluationRows
from churn_dagster.training.ml.evidence import AUC, Assessment, EvidencePolicy, assess
from churn_dagster.training.ml.sanity import finite_probabilities, finite_weights
from churn_dagster.training.ml.train import default_device
from churn_dagster.training.mlflow_logging import (
    epoch_logger,
    log_sklearn_like_model,
    log_torch_model,
)
from churn_dagster.training.registry import promote

CLASS_NAMES = ("ends", "continues")  # within the horizon, after the request


def _fitter(context: dg.AssetExecutionContext, family: str, params: tuple, lake: Lake, cohorts: list[date],
            examples: pd.DataFrame) -> Callable[[int], HorizonResult]:
    if family != "lstm":
        return lambda horizon: train_tabular(family, examples, horizon, params[0])
    config, network = params
    requests = read_cohort_tables(lake, "continuation_requests", cohorts, "continuation training")
    prefixes = Prefixes(requests[requests["user_id"].isin(set(examples["user_id"]))], examples, network.max_steps)
    device = default_device()
    return lambda horizon: train_prefix_lstm(prefixes, horizon, config, network, device, epoch_logger(
        "binary", context.log.info, registered_name(family, horizon)))


def _log_horizon(result: HorizonResult, title: str) -> str | None:
    """Metrics, plots, predictions and the model into the active MLflow run; the model's URI (None if untrained)."""
    for split, m in (("val", result.val_metrics), ("test", result.test_metrics)):
        mlflow.log_metrics({f"{split}_auc": m["roc_auc"], f"{split}_average_precision": m["average_precision"],
                            f"{split}_examples": m["examples"], f"{split}_positives": m["positives"]})
    mlflow.log_metrics({"train_examples": result.train_examples, "train_positives": result.train_positives,
                        "train_seconds": result.seconds})
    if result.model is None:
        mlflow.set_tag("not_trained", result.skipped)
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out, frame = Path(tmp), result.predictions
        if 0 < frame["y"].sum() < len(frame):
            plots.plot_roc_comparison({title: (frame["y"].to_numpy() == 1, frame["p"].to_numpy())}, out / "roc.png",
                                      f"{title}: ROC (test)")
        if result.history:
            plots.plot_learning_curves(result.history, out / "learning_curves.png", result.best_epoch, title=title)
        frame.to_parquet(out / "test_predictions.parquet", index=False)
        (out / "metrics.json").write_text(json.dumps({"validation": result.val_metrics, "test": result.test_metrics}))
        mlflow.log_artifacts(str(out))
    if result.family == "lstm":
        rows = result.validation
        sample = PrefixDataset(rows.prefixes, rows.index[:4], rows.y, result.normalization)
        return log_torch_model(result, collate([sample[i] for i in range(len(sample))]))
    return log_sklearn_like_model(result, result.validation.kpi.head(50),
                                  "sklearn" if result.family == "logreg" else "xgboost")


def _sanity(results: dict[int, HorizonResult], assessments: dict[int, Assessment]) -> dg.AssetCheckResult:
    """Finite weights and finite validation probabilities in [0, 1] at every trained horizon, with the evidence
    rule's verdict; the test split is reported, never judged."""
    passed, lines = True, []
    for h, r in results.items():
        if r.model is None:
            lines.append(f"{h} min: not trained ({r.skipped})")
            continue
        finite = finite_weights(r.model) and finite_probabilities(r.val_proba)
        passed &= finite
        lines.append(f"{h} min: weights and validation probabilities finite: {finite}; {assessments[h].reason}")
    return check("model_sane", passed, "; ".join(lines))


def _assess(result: HorizonResult, policy: EvidencePolicy) -> Assessment:
    if result.model is None:
        return Assessment(False, float("nan"), float("nan"), (), f"not trained: {result.skipped}")
    result.validation.policy = policy  # the champion is judged on the same evidence
    return assess(policy, AUC, result.validation.y if isinstance(result.validation, EvaluationRows)
                  else result.validation.y[result.validation.index], result.val_proba, CLASS_NAMES)


def _candidate(mlflow_res: MlflowResource, family: str, name: str, h: int, unit: Logged,
               cohorts: str) -> RegistryCandidate:
    """Horizon ``h``'s model as a registry candidate ``name`` (an untrained horizon is offered as not trained,
    with why)."""
    result = unit.result
    assessment = _assess(result, mlflow_res.evidence_policy)
    return RegistryCandidate(
        name, unit, assessment, {"val_auc": assessment.score, "test_auc": result.test_auc, "cohorts": cohorts,
                                 "horizon_min": h},
        lambda version: promote(mlflow_res, version, Candidate(name, family, result.model, result.normalization),
                                result.validation),
        trained=result.model is not None)


def _write_outputs(folder: Path, summary: dict, predictions: pd.DataFrame) -> None:
    """The asset's own files, for the report: every horizon's metrics and test predictions."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "metrics.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=float))
    with atomic_path(folder / "test_predictions.parquet") as tmp:
        predictions.to_parquet(tmp, index=False)


def train_family(context: dg.AssetExecutionContext, p: Partitions, family: str, cohort: date, params: tuple, lake: Lake,
                 mlflow_res: MlflowResource) -> Iterator:
    mlflow_res.check_reachable()  # before anything else: a transient outage is retried, not half-trained
    window = p.training_cohorts(cohort)
    examples = read_cohort_tables(lake, "continuation_examples", window, "continuation training")
    folder = lake.model(asset_name(family), cohort)
    if examples.empty:
        _write_outputs(folder, {"family": family, "cohorts": [], "horizons": {}}, pd.DataFrame())
        yield dg.MaterializeResult(check_results=[check(
            "model_sane", True, f"nothing trained: no continuation example in the cohorts {window[0]} .. {window[-1]}")])
        return
    cohorts = ",".join(sorted({str(c)[:10] for c in examples["cohort_day"]}))
    yield from train_examples(context, p.settings.torch_threads, family, params, examples,
                              _fitter(context, family, params, lake, window, examples), folder,
                              lambda h: registered_name(family, h), cohorts,
                              {"task": "continuation", "family": family, "cohorts": cohorts,
                               "partition": cohort.isoformat()}, mlflow_res)


def train_examples(context: dg.AssetExecutionContext, torch_threads: int, family: str, params: tuple,
                   examples: pd.DataFrame, fit_horizon: Callable[[int], HorizonResult], folder: Path, name_of,
                   cohorts: str, tags: dict, mlflow_res: MlflowResource) -> Iterator:
    """Every horizon of ``family`` fit by ``fit_horizon``, each in its MLflow run (``tags`` on each) and
    registered as ``name_of(horizon)`` under the evidence and champion rules; the asset's files go to
    ``folder``. The NCM cohorts' assets and an event log's call it alike (``cohorts``: what the examples
    cover, for the registry's tags and the metadata)."""
    param_values = {k: v for p in params for k, v in dataclasses.asdict(p).items()}
    units = [Unit(h, f"{name_of(h)} {tags.get('partition', '')}".strip(), {**tags, "horizon_min": str(h)},
                  {**param_values, "family": family, "horizon_min": h}) for h in HORIZONS_MIN]
    trained = train_and_register(
        context, mlflow_res, torch_threads, units, lambda unit: fit_horizon(unit.key),
        lambda unit, result: _log_horizon(result, f"{FAMILIES[family][0]}, {unit.key} min"),
        lambda logged: [_candidate(mlflow_res, family, name_of(h), h, u, cohorts) for h, u in logged.items()],
        lambda logged, offered: _sanity({h: u.result for h, u in logged.items()},
                                        {c.logged.unit.key: c.assessment for c in offered}))
    results = {h: u.result for h, u in trained.units.items()}
    runs = {h: u.url for h, u in trained.units.items()}
    registered = {h: trained.promotions[name_of(h)] for h in results}
    summary = {"family": family, "cohorts": cohorts.split(","), "params": param_values, "horizons": {
        str(h): {"validation": r.val_metrics, "test": r.test_metrics, "skipped": r.skipped,
                 "train_examples": r.train_examples, "train_positives": r.train_positives, "seconds": r.seconds,
                 "best_epoch": r.best_epoch, "history": r.history, "mlflow_run": runs[h],
                 "registered_version": registered[h].version, "champion": registered[h].promoted,
                 "champion_decision": registered[h].describe()}
        for h, r in results.items()}}
    _write_outputs(folder, summary, pd.concat([r.predictions.assign(horizon_min=h) for h, r in results.items()],
                                              ignore_index=True))
    rows = [(h, r.train_examples, r.train_positives, r.test_metrics["examples"], r.test_metrics["positives"],
             r.val_metrics["roc_auc"], r.test_auc, r.test_metrics["average_precision"], round(r.seconds, 1),
             r.skipped or "trained") for h, r in results.items()]
    yield dg.MaterializeResult(metadata={
        "metrics": table(["horizon (min)", "train examples", "train positives", "test examples", "test positives",
                          "val AUC", "test AUC", "test average precision", "seconds", "status"], rows),
        **{f"mlflow_run_{h}min": dg.MetadataValue.url(runs[h]) for h in results},
        "champion": dg.MetadataValue.md("\n".join(
            f"- {name_of(h)}: {p.describe()}" for h, p in registered.items())),
        "cohorts": dg.MetadataValue.text(cohorts),
    }, check_results=[trained.sanity])
