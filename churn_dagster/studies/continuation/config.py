"""The continuation models' names, hyperparameters and run config: what the wiring, the training body and the
report share (the churn models keep theirs in :mod:`churn_dagster.studies.churn.config` the same way)."""

import dataclasses

import dagster as dg

from churn_dagster.studies.continuation.ml.config import PrefixNetwork, prefix_training
from churn_dagster.training.config import config_class
from churn_dagster.training.ml.hyperparameters import LogisticConfig, XGBConfig

CODE_VERSION = "2"  # features only from what the log proves happened before; the registry's evidence rule
FAMILIES = {
    "logreg": ("Logistic regression", "scikit-learn"),
    "xgboost": ("XGBoost", "xgboost"),
    "lstm": ("LSTM over the session's requests", "pytorch"),
}
DEFAULTS: dict[str, tuple] = {
    "logreg": (LogisticConfig(),),
    "xgboost": (XGBConfig(),),
    "lstm": (prefix_training(), PrefixNetwork()),
}
CONFIG_CLASSES = {
    family: config_class(f"Continuation{family.title()}Config",
                         f"Hyperparameters of the continuation {label}, with its defaults.", *DEFAULTS[family])
    for family, (label, _) in FAMILIES.items()
}
# A test AUC is judged (by the sanity check, and flagged in the report) only on at least this many examples of
# each class: with a handful of positives (long sessions are rare in small data) an AUC says nothing.
MIN_CLASS_EXAMPLES = 20


def asset_name(family: str) -> str:
    return f"continuation_{family}"


def registered_name(family: str, horizon_min: int) -> str:
    return f"continuation_{family}_{horizon_min}min"


def hyperparameters(family: str, config: dg.Config) -> tuple:
    """The family's hyperparameter dataclasses with the values of a run's ``config``."""
    return tuple(dataclasses.replace(d, **{f.name: getattr(config, f.name) for f in dataclasses.fields(d)})
                 for d in DEFAULTS[family])


def epoch_cap_config(max_epochs: int | None) -> dict | None:
    """Run config of ``continuation_job`` capping the LSTM's epochs (``--max-epochs``); None keeps its default."""
    return None if max_epochs is None else {"ops": {asset_name("lstm"): {"config": {"epochs": max_epochs}}}}
