"""The trend model assets' names, labels and run config, derived from the hyperparameter dataclasses of
:mod:`churn_dagster.studies.trends.ml.hyperparameters` as the churn models' are (:mod:`churn_dagster.studies.churn.config`):
every field, its default, bounds and description, less the fields a trend run sets itself (the seed, from the
``seeds`` list, and whether DIGMN's layers are dynamic, from the model)."""

import dagster as dg

from churn_dagster.studies.trends.ml.hyperparameters import (
    FIXED_FIELDS,
    SEQUENCE_MODELS,
    TREND_DEFAULTS,
    TREND_MODELS,
)
from churn_dagster.training.config import config_class, config_values

TREND_TASKS = ("day", "session")
TREND_CODE_VERSION = "2"  # 2: first-period inputs only, the evidence rule, champions with their own topic model
MODEL_LABELS = {
    "logreg": ("Logistic regression", "scikit-learn"),
    "xgboost": ("XGBoost", "xgboost"),
    "mlp": ("MLP {64, 32}", "scikit-learn"),
    "activity_lstm": ("Activity LSTM", "pytorch"),
    "multichannel": ("Deep multi-channel", "pytorch"),
    "digmn": ("DIGMN", "pytorch"),
    "digmn_static": ("DIGMN with static layers (ablation)", "pytorch"),
}
TASK_LABELS = {
    "day": "the day-level trend (decrease / same / increase of active days per day; macro F1)",
    "session": "the session-level trend (whether sessions per day decrease; AUROC)",
}
# What the trend data of a partition is read from, over its training window; the intents are its own. Every
# input reads the first trend period only; the labels read both periods.
WINDOW_INPUTS = ("trend_labels", "session_events", "user_day_events", "trend_sessions", "trend_macro_features",
                 "user_splits")


def trend_model_name(model: str, task: str) -> str:
    return f"trend_{model}_{task}"


TREND_MODEL_NAMES = [trend_model_name(m, t) for m in TREND_MODELS for t in TREND_TASKS]
CONFIG_CLASSES: dict[str, type[dg.Config]] = {
    model: config_class("Trend" + "".join(p.title() for p in model.split("_")) + "Config",
                        f"Hyperparameters of the {MODEL_LABELS[model][0]} trend models (seeds included).",
                        *TREND_DEFAULTS[model], exclude=FIXED_FIELDS)
    for model in TREND_MODELS
}


def trend_hyperparameters(model: str, config: dg.Config) -> tuple:
    """The model's hyperparameter dataclasses with the values of a run's ``config``."""
    return config_values(TREND_DEFAULTS[model], config)


def trend_run_config(max_epochs: int | None = None, seeds: int | None = None) -> dict:
    """Run config of the trend models: the networks' epochs capped at ``max_epochs`` (``--max-epochs``) and every
    model trained with the first ``seeds`` seeds (``--trend-seeds``) instead of the paper's five; empty when
    both are None."""
    ops: dict[str, dict] = {}
    for model in TREND_MODELS:
        values = {"epochs": max_epochs} if max_epochs is not None and model in SEQUENCE_MODELS else {}
        if seeds is not None:
            values["seeds"] = list(range(seeds))
        ops.update({trend_model_name(model, t): {"config": values} for t in TREND_TASKS if values})
    return {"ops": ops} if ops else {}
