"""Eight trained models: logistic regression, XGBoost, LSTM and hybrid LSTM, each for churn and for level.

Each asset trains under both protocols of :mod:`churn_dagster.ml.experiments` (one MLflow run each), logs
everything to MLflow, registers the random-split model and moves its ``champion`` alias only if it beats
the current champion on validation AUC. The asset's own files (metrics and test predictions) feed the
evaluation report. Training runs in the ``gpu`` pool, so only one runs at a time.
"""

from datetime import date

import dagster as dg
import numpy as np
import pandas as pd
import torch
from pydantic import Field

from churn_dagster.calendar import parse_day
from churn_dagster.defs.metadata import check, markdown_table
from churn_dagster.defs.mlflow_resource import MlflowResource, Promotion
from churn_dagster.defs.model_logging import (
    epoch_logger,
    headline_auc,
    log_params,
    log_result,
    log_sklearn_like_model,
    log_torch_model,
    write_model_outputs,
)
from churn_dagster.defs.partitions import cohort_partitions
from churn_dagster.defs.raw_assets import OWNERS
from churn_dagster.defs.resources import LakeResource
from churn_dagster.ml import classical
from churn_dagster.ml.data import SequenceDataset, make_loader
from churn_dagster.ml.experiments import SCHEMES, SchemeResult, classical_experiment, sequence_experiment
from churn_dagster.ml.train import TrainConfig, default_device
from churn_dagster.transforms.lake import Lake, require

TARGET_SUFFIX = {"binary": "churn", "level": "level"}
FAMILIES = {
    "logreg": ("Logistic regression", "scikit-learn"),
    "xgboost": ("XGBoost", "xgboost"),
    "lstm": ("LSTM", "pytorch"),
    "hybrid_lstm": ("Hybrid LSTM", "pytorch"),
}


class TrainingCohorts(dg.Config):
    cohorts: list[str] = Field(
        default_factory=list,
        description="Cohort start days to train on (YYYY-MM-DD); empty means every labelled cohort.",
    )

    def days(self) -> list[date]:
        keys = self.cohorts or cohort_partitions.get_partition_keys()
        return sorted(parse_day(k) for k in keys)


class SequenceModelConfig(TrainingCohorts):
    """SPEC defaults; ``None`` takes the family's default (LSTM: 20 epochs, 1 layer; hybrid: 50, 2)."""

    epochs: int | None = None
    batch_size: int = 128
    learning_rate: float = 1e-3
    hidden_size: int = 128
    num_layers: int | None = None
    dropout: float = 0.2
    seed: int = 42


class ClassicalModelConfig(TrainingCohorts):
    C: float = Field(default=1.0, description="Inverse L2 penalty of the logistic regression.")
    n_estimators: int = Field(default=2000, description="XGBoost rounds before early stopping.")
    learning_rate: float = 0.05
    max_depth: int = 6
    early_stopping_rounds: int = 50
    seed: int = 42


def model_name(family: str, target: str) -> str:
    return f"{family}_{TARGET_SUFFIX[target]}"


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


def _spec(family: str, target: str, deps: list) -> dict:
    label, kind = FAMILIES[family]
    return dict(
        name=model_name(family, target),
        description=f"{label} for {'binary churn' if target == 'binary' else 'the 5-level engagement class'}, "
        "trained on the chosen cohorts under the random and the out-of-time split; MLflow runs linked below.",
        group_name="models",
        kinds={"python", kind, "mlflow"},
        owners=OWNERS,
        pool="gpu",
        deps=deps,
        check_specs=[dg.AssetCheckSpec("model_sane", asset=model_name(family, target),
                                       description="Finite weights, finite test AUCs above chance.")],
    )


def tensor_dirs(lake: Lake, cohorts: list[date]) -> list:
    return require([lake.tensors(c) for c in cohorts], "model training")


def build_sequence_model(family: str, target: str) -> dg.AssetsDefinition:
    kind = "hybrid" if family == "hybrid_lstm" else "lstm"

    @dg.asset(**_spec(family, target, ["sequence_tensors"]))
    def _model(context: dg.AssetExecutionContext, config: SequenceModelConfig, lake: LakeResource, mlflow: MlflowResource):
        cohorts = config.days()
        dirs = tensor_dirs(lake.lake, cohorts)
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
        write_model_outputs(lake.lake.root / "models" / model_name(family, target), results,
                            {"family": family, "target": target, "registered_version": promotion.version,
                             "champion": promotion.promoted, "device": str(device),
                             "cohorts": [c.isoformat() for c in cohorts]})
        return output

    return _model


def build_classical_model(family: str, target: str) -> dg.AssetsDefinition:
    @dg.asset(**_spec(family, target, ["kpi_features", "label_scores"]))
    def _model(context: dg.AssetExecutionContext, config: ClassicalModelConfig, lake: LakeResource, mlflow: MlflowResource):
        cohorts = config.days()
        kpi = pd.read_parquet(require([lake.lake.cohort("kpi_features", c) for c in cohorts], "model training"))
        labels = pd.read_parquet(require([lake.lake.cohort("label_scores", c) for c in cohorts], "model training"))
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
        write_model_outputs(lake.lake.root / "models" / model_name(family, target), results,
                            {"family": family, "target": target, "registered_version": promotion.version,
                             "champion": promotion.promoted, "features": classical.kpi_feature_columns(kpi),
                             "cohorts": [c.isoformat() for c in cohorts]})
        return output

    return _model


model_assets = [
    (build_sequence_model if family in ("lstm", "hybrid_lstm") else build_classical_model)(family, target)
    for family in FAMILIES
    for target in ("binary", "level")
]
