"""The body of the case-study model assets: both variants in their MLflow runs, the sanity check, the evidence
rule, registration with the champion rule, and the asset's own files (read by ``case_study_report``).

Imported only when a training step runs (scikit-learn, MLflow).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import sklearn
from mlflow.models import infer_signature

from churn_dagster.core.metadata import check, table
from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.settings import Settings
from churn_dagster.storage.duck import atomic_path
from churn_dagster.storage.lake import Lake, require
from churn_dagster.studies.case_study.ml import models as cs
from churn_dagster.studies.case_study.names import (
    FAMILY_LABELS,
    asset_name,
    model_folder,
    registered_name,
)
from churn_dagster.studies.case_study.sql.data import features_path, labels_path
from churn_dagster.training.kit import RegistryCandidate, Unit, train_and_register
from churn_dagster.training.ml import plots
from churn_dagster.training.ml.champions import Candidate, EvaluationRows
from churn_dagster.training.ml.evidence import AUC, Assessment, assess
from churn_dagster.training.ml.metrics import flatten_metrics
from churn_dagster.training.registry import promote

STUDY_TAG = {"study": "case_study"}


def _log_variant(result: cs.VariantResult, title: str, sample: pd.DataFrame) -> str:
    """Metrics, plots, test predictions and the fitted Pipeline into the active MLflow run; the model URI
    (``sample``: input rows for the model's signature and example)."""
    mlflow.log_metrics({"train_rows": result.train_rows, "train_actives": result.train_actives,
                        "original_train_actives": result.original_train_actives, "train_seconds": result.seconds,
                        **flatten_metrics(result.val_metrics, "val_"), **flatten_metrics(result.test_metrics, "test_")})
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        plots.plot_confusion_matrix(result.test_metrics["confusion_matrix"], ["inactive", "active"],
                                    out / "confusion_matrix.png", title=f"{title}: confusion matrix (test)")
        p = result.predictions["p"].to_numpy()
        plots.plot_roc_curves(result.predictions["y"].to_numpy(), np.column_stack([1 - p, p]), ["inactive", "active"],
                              out / "roc.png", title=f"{title}: ROC (test)")
        result.predictions.to_parquet(out / "test_predictions.parquet", index=False)
        mlflow.log_artifacts(str(out))
    return _log_pipeline(result.model, sample)


def _log_pipeline(model, sample: pd.DataFrame) -> str:
    import skops.io

    # skops (MLflow's safe format) refuses to load any type it was not told to trust. The Pipeline was built and
    # fit in this step from scikit-learn parts only; the types it holds are listed and trusted, nothing else.
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    signature = infer_signature(sample, model.predict_proba(sample))
    return mlflow.sklearn.log_model(model, name="model", signature=signature, input_example=sample.head(3),
                                    skops_trusted_types=trusted,
                                    pip_requirements=[f"scikit-learn=={sklearn.__version__}", "skops"]).model_uri


def _sane(results: dict[str, cs.VariantResult], validation: pd.DataFrame,
          assessments: dict[str, Assessment]) -> dg.AssetCheckResult:
    """Finite probabilities in [0, 1] on the validation users and finite parameters for every variant, with the
    evidence rule's verdict; the test split is reported, never judged."""
    parts, ok = [], True
    for variant, r in results.items():
        p = cs.proba_active(r.model, validation)
        finite = bool(np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all() and _finite_parameters(r.model))
        ok &= finite
        parts.append(f"{variant}: validation probabilities and parameters finite: {finite}; {assessments[variant].reason}")
    return check("model_sane", ok, "; ".join(parts))


def _finite_parameters(model) -> bool:
    inner = model.named_steps["model"]
    arrays = [getattr(inner, a) for a in ("coef_", "intercept_", "theta_", "var_") if hasattr(inner, a)]
    arrays += list(getattr(inner, "coefs_", [])) + list(getattr(inner, "intercepts_", []))
    for calibrated in getattr(inner, "calibrated_classifiers_", []):
        arrays += [calibrated.estimator.coef_, calibrated.estimator.intercept_]
    if hasattr(inner, "tree_"):
        arrays.append(inner.tree_.threshold)
    return all(np.isfinite(np.asarray(a, dtype=np.float64)).all() for a in arrays)


def _write_outputs(folder: Path, summary: dict, results: dict[str, cs.VariantResult]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    variants = {v: {"validation": r.val_metrics, "test": r.test_metrics, "train_rows": r.train_rows,
                    "train_actives": r.train_actives, "original_train_actives": r.original_train_actives,
                    "seconds": r.seconds} for v, r in results.items()}
    with atomic_path(folder / "metrics.json") as tmp:
        tmp.write_text(json.dumps({**summary, "variants": variants}, indent=2, default=float))
    frames = [r.predictions.assign(variant=v) for v, r in results.items()]
    with atomic_path(folder / "test_predictions.parquet") as tmp:
        (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["user_id", "y", "p", "variant"])
         ).to_parquet(tmp, index=False)


def train_case_study_model(context: dg.AssetExecutionContext, settings: Settings, family: str, hyper: tuple,
                           lake: Lake, mlflow_res: MlflowResource) -> Iterator:
    mlflow_res.check_reachable()  # before anything else: a transient outage is retried, not half-trained
    features = pd.read_parquet(require([features_path(lake)], asset_name(family))[0])
    labels = pd.read_parquet(require([labels_path(lake)], asset_name(family))[0])
    yield from train_design(context, settings.torch_threads, family, hyper, cs.design(features, labels),
                            model_folder(lake, family), lambda variant: registered_name(family, variant), STUDY_TAG,
                            mlflow_res)


def train_design(context: dg.AssetExecutionContext, torch_threads: int, family: str, hyper: tuple, d: cs.Design,
                 folder: Path, name_of, tags: dict, mlflow_res: MlflowResource) -> Iterator:
    """Both variants of ``family`` on ``d``, each in its MLflow run (``tags`` on each) and registered as
    ``name_of(variant)`` under the evidence and champion rules; the asset's files go to ``folder``. The NCM
    tables' assets and an event log's call it alike."""
    model_settings, upsampling = hyper
    reason = cs.trainable(d, getattr(model_settings, "calibration_folds", 1))
    if reason is not None:
        _write_outputs(folder, {"family": family, "reason": reason}, {})
        yield dg.MaterializeResult(
            metadata={"note": dg.MetadataValue.text(f"nothing trained: {reason}")},
            check_results=[check("model_sane", True, f"nothing trained: {reason}; the champions stay")])
        return
    validation = d.X[d.rows("validation")]
    params = {**{k: str(v) for k, v in vars(model_settings).items()}, **vars(upsampling), "family": family}
    units = [Unit(variant, f"{name_of(variant)} ({variant})",
                  {**tags, "family": family, "variant": variant, "registered_model": name_of(variant)},
                  {**params, "variant": variant}) for variant in cs.VARIANTS]
    rows = EvaluationRows(target="binary", y=d.y[d.rows("validation")], kpi=validation, policy=mlflow_res.evidence_policy)

    def log(unit: Unit, result: cs.VariantResult) -> str:
        return _log_variant(result, f"{FAMILY_LABELS[family]} ({unit.key})", validation.head(50))

    def candidates(logged: dict) -> list[RegistryCandidate]:
        offered = []
        for variant, unit in logged.items():
            name, result = name_of(variant), unit.result
            assessment = assess(rows.policy, AUC, rows.y, cs.proba_active(result.model, validation), ("inactive", "active"))
            offered.append(RegistryCandidate(
                name, unit, assessment, {"val_auc": assessment.score, "test_auc": result.test_metrics["roc_auc"]},
                lambda version, name=name, result=result: promote(mlflow_res, version, Candidate(name, family, result.model),
                                                                  rows)))
        return offered

    def sanity(logged: dict, offered: list[RegistryCandidate]) -> dg.AssetCheckResult:
        return _sane({k: u.result for k, u in logged.items()}, validation,
                     {c.logged.unit.key: c.assessment for c in offered})

    trained = train_and_register(context, mlflow_res, torch_threads, units, lambda unit: cs.run_variant(
        family, model_settings, upsampling, d, unit.key), log, candidates, sanity)
    results = {k: u.result for k, u in trained.units.items()}
    urls = {k: u.url for k, u in trained.units.items()}
    promotions = {k: trained.promotions[name_of(k)] for k in results}
    _write_outputs(folder, {
        "family": family, "params": params,
        "registered": {v: {"name": p.name, "version": p.version, "champion": p.promoted, "decision": p.describe()}
                       for v, p in promotions.items()}}, results)
    metrics = table(
        ["variant", "training rows", "training actives", "val AUC", "test AUC", "test accuracy", "test precision (active)",
         "test recall (active)", "test F1 (active)", "seconds"],
        [(v, r.train_rows, r.train_actives, r.val_metrics["roc_auc"], r.test_metrics["roc_auc"],
          r.test_metrics["accuracy"], r.test_metrics["precision_active"], r.test_metrics["recall_active"],
          r.test_metrics["f1_active"], round(r.seconds, 2)) for v, r in results.items()])
    yield dg.MaterializeResult(
        metadata={"metrics": metrics, **{f"mlflow_run_{v}": dg.MetadataValue.url(u) for v, u in urls.items()},
                  **{f"registered_{v}": dg.MetadataValue.text(p.describe()) for v, p in promotions.items()},
                  "users": table(["split", "users", "active share"],
                                 [(s, int(d.rows(s).sum()), float(d.y[d.rows(s)].mean()))
                                  for s in ("train", "validation", "test")])},
        check_results=[trained.sanity],
    )
