"""The body of the training assets: both protocols, MLflow logging, registration and the asset's own files.

Kept apart from :mod:`model_assets` and imported only when a training step runs, so that loading the code
location (webserver, daemon, every run worker) does not pay for torch, scikit-learn, XGBoost and MLflow.
"""

from datetime import date

import dagster as dg
import numpy as np
import pandas as pd
import torch

from churn_dagster.defs.metadata import check, markdown_table
from churn_dagster.defs.mlflow_resource import MlflowResource, Promotion
from churn_dagster.defs.model_assets import FAMILIES, ClassicalModelConfig, SequenceModelConfig, model_name
from churn_dagster.defs.model_logging import (
    epoch_logger,
    headline_auc,
    log_params,
    log_result,
    log_sklearn_like_model,
    log_torch_model,
    write_model_outputs,
)
from churn_dagster.ml import classical
from churn_dagster.ml.data import SequenceDataset, make_loader
from churn_dagster.ml.experiments import SCHEMES, SchemeResult, classical_experiment, sequence_experiment
from churn_dagster.ml.train import TrainConfig, default_device
from churn_dagster.transforms.lake import Lake, require


def _summary_rows(results: dict[str, SchemeResult], target: str) -> list[tuple]:
    return [
        (s, r.train_users, r.test_users, headline_auc(target, r.val_metrics), headline_auc(target, r.test_metrics),
         r.test_metrics["accuracy"], r.test_metrics["f1_macro"], f"{r.seconds:.1f}")
        for s, r in results.items()
    ]


def _train_and_log(context, family: str, target: str, mlflow_res: MlflowResource, cohorts: list[date], params: dict,
                   run_scheme, log_model) -> tuple[dg.MaterializeResult, dict[str, SchemeResult], Promotion]:
    """Both protocols, each in its own MLflow run; register the random-split model."""
    name = model_name(family, target)
    results, urls = {}, {}
    tags = {"cohorts": ",".join(c.isoformat() for c in cohorts), "family": family, "target": target}
    # With a single cohort there is nothing earlier to train on: the out-of-time protocol waits for a second.
    schemes = SCHEMES if len(cohorts) > 1 else ("random",)
    for scheme in schemes:
        with mlflow_res.start_run(context, f"{name} ({scheme})", {**tags, "split_scheme": scheme}) as run:
            log_params({**params, "family": family, "target": target, "split_scheme": scheme})
            results[scheme] = run_scheme(scheme)
            log_result(results[scheme], target, f"{FAMILIES[family][0]} ({scheme})")
            if scheme == "random":
                model_uri = log_model(results[scheme])
            urls[scheme] = mlflow_res.run_url(run.info.run_id)
    promotion = mlflow_res.promote_if_better(name, model_uri, headline_auc(target, results["random"].val_metrics))
    context.log.info(promotion.describe())
    return dg.MaterializeResult(
        metadata={
            "metrics": dg.MetadataValue.md(markdown_table(
                ["split", "train users", "test users", "val AUC", "test AUC", "test accuracy", "test macro F1", "seconds"],
                _summary_rows(results, target),
            )),
            **{f"mlflow_run_{scheme}": dg.MetadataValue.url(url) for scheme, url in urls.items()},
            "registered_model": dg.MetadataValue.text(f"{name} v{promotion.version}"),
            "champion": dg.MetadataValue.text(promotion.describe()),
            "cohorts": dg.MetadataValue.text(tags["cohorts"]),
        },
        check_results=[_sanity_check(results, target)],
    ), results, promotion


def _sanity_check(results: dict[str, SchemeResult], target: str) -> dg.AssetCheckResult:
    aucs = [headline_auc(target, r.test_metrics) for r in results.values()]
    finite = all(np.isfinite(aucs))
    weights_ok = all(_finite_weights(r.model) for r in results.values())
    return check(
        "model_sane",
        finite and weights_ok and min(aucs) > 0.5,
        f"test AUCs {', '.join(f'{a:.3f}' for a in aucs)}; weights finite: {weights_ok}",
    )


def _finite_weights(model) -> bool:
    if isinstance(model, torch.nn.Module):
        return all(torch.isfinite(p).all().item() for p in model.parameters())
    inner = getattr(model, "named_steps", {}).get("model", model)
    coef = getattr(inner, "coef_", None)
    return True if coef is None else bool(np.isfinite(coef).all())


def _model_folder(lake: Lake, family: str, target: str):
    return lake.root / "models" / model_name(family, target)


def train_sequence_model(context, family: str, target: str, config: SequenceModelConfig, lake: Lake,
                         mlflow: MlflowResource) -> dg.MaterializeResult:
    mlflow.check_reachable()  # before any training, not after it
    kind = "hybrid" if family == "hybrid_lstm" else "lstm"
    cohorts = config.days()
    dirs = require([lake.tensors(c) for c in cohorts], "model training")
    defaults = TrainConfig.hybrid() if kind == "hybrid" else TrainConfig.lstm()
    train_config = TrainConfig(**{**defaults.__dict__, "epochs": config.epochs or defaults.epochs,
                                  "batch_size": config.batch_size, "lr": config.learning_rate, "seed": config.seed})
    model_kwargs = {"hidden_size": config.hidden_size, "dropout": config.dropout,
                    "num_layers": config.num_layers or (2 if kind == "hybrid" else 1)}
    device = default_device()
    params = {**train_config.__dict__, **model_kwargs, "device": str(device)}

    def run_scheme(scheme):
        return sequence_experiment(kind, target, dirs, scheme, train_config, device, epoch_logger(target), **model_kwargs)

    def log_model(result):
        sample = next(iter(make_loader(SequenceDataset(dirs[:1], target, normalization=result.normalization), 4)))
        return log_torch_model(result, sample)

    output, results, promotion = _train_and_log(context, family, target, mlflow, cohorts, params, run_scheme, log_model)
    write_model_outputs(_model_folder(lake, family, target), results,
                        {"family": family, "target": target, "registered_version": promotion.version,
                         "champion": promotion.promoted, "device": str(device),
                         "cohorts": [c.isoformat() for c in cohorts]})
    return output


def train_classical_model(context, family: str, target: str, config: ClassicalModelConfig, lake: Lake,
                          mlflow: MlflowResource) -> dg.MaterializeResult:
    mlflow.check_reachable()  # before any training, not after it
    cohorts = config.days()
    kpi = pd.read_parquet(require([lake.cohort("kpi_features", c) for c in cohorts], "model training"))
    labels = pd.read_parquet(require([lake.cohort("label_scores", c) for c in cohorts], "model training"))
    xgb = classical.XGBConfig(n_estimators=config.n_estimators, learning_rate=config.learning_rate,
                              max_depth=config.max_depth, early_stopping_rounds=config.early_stopping_rounds,
                              seed=config.seed)
    params = {"C": config.C, **xgb.__dict__} if family == "xgboost" else {"C": config.C}

    def run_scheme(scheme):
        return classical_experiment(family, target, kpi, labels, scheme, xgb, config.C)

    def log_model(result):
        X_sample = classical.kpi_design(kpi, labels).X.head(50)
        return log_sklearn_like_model(result, X_sample, "sklearn" if family == "logreg" else "xgboost")

    output, results, promotion = _train_and_log(context, family, target, mlflow, cohorts, params, run_scheme, log_model)
    write_model_outputs(_model_folder(lake, family, target), results,
                        {"family": family, "target": target, "registered_version": promotion.version,
                         "champion": promotion.promoted, "features": classical.kpi_feature_columns(kpi),
                         "cohorts": [c.isoformat() for c in cohorts]})
    return output
