"""The eight model assets' names and their run config, derived from the hyperparameter dataclasses of ``ml/``.

Each family's hyperparameters are defined once, in ``ml/``: :class:`~churn_dagster.training.ml.train.TrainConfig` and
:class:`~churn_dagster.training.ml.networks.NetworkShape` for the sequence models, :class:`~churn_dagster.training.ml.classical.
LogisticConfig` and :class:`~churn_dagster.training.ml.classical.XGBConfig` for the classical ones. The ``dg.Config``
of each asset is generated from those dataclasses (:mod:`churn_dagster.training.ml.hyperparameters`, free of torch and
scikit-learn, so loading the code location stays light) (every field, its type, the family's default, and the
bounds and description in the field's metadata), and :func:`hyperparameters` turns a run's config back into
them, so a new hyperparameter appears in the launchpad without being mapped here by hand.
"""

from __future__ import annotations

import dagster as dg

from churn_dagster.core.constants import TARGETS
from churn_dagster.training.config import config_class, config_values
from churn_dagster.training.ml.hyperparameters import (
    LogisticConfig,
    NetworkShape,
    TrainConfig,
    XGBConfig,
)

TARGET_SUFFIX = {"binary": "churn", "level": "level"}
FAMILIES = {
    "logreg": ("Logistic regression", "scikit-learn"),
    "xgboost": ("XGBoost", "xgboost"),
    "lstm": ("LSTM", "pytorch"),
    "hybrid_lstm": ("Hybrid LSTM", "pytorch"),
}
SEQUENCE_FAMILIES = ("lstm", "hybrid_lstm")
MODEL_CODE_VERSION = "4"  # evidence rule, deployed out-of-time protocol, champions as of a window

# Each family's hyperparameters, as the dataclass instances holding its defaults (SPEC: the LSTM trains 20
# epochs at a constant rate with one layer; the hybrid up to 50 with plateau halving, early stopping, 2 layers).
DEFAULTS: dict[str, tuple] = {
    "logreg": (LogisticConfig(),),
    "xgboost": (XGBConfig(),),
    "lstm": (TrainConfig.lstm(), NetworkShape()),
    "hybrid_lstm": (TrainConfig.hybrid(), NetworkShape(num_layers=2)),
}
def model_name(family: str, target: str) -> str:
    return f"{family}_{TARGET_SUFFIX[target]}"


def sequence_model_names() -> list[str]:
    return [model_name(f, t) for f in SEQUENCE_FAMILIES for t in TARGETS]


def _config_class(family: str) -> type[dg.Config]:
    name = "".join(part.title() for part in family.split("_")) + "Config"
    return config_class(name, f"Hyperparameters of the {FAMILIES[family][0]} models, with its defaults.", *DEFAULTS[family])


CONFIG_CLASSES: dict[str, type[dg.Config]] = {family: _config_class(family) for family in FAMILIES}


def hyperparameters(family: str, config: dg.Config) -> tuple:
    """The family's hyperparameter dataclasses with the values of a run's ``config``."""
    return config_values(DEFAULTS[family], config)


def epoch_cap_config(max_epochs: int | None) -> dict:
    """Run config capping the sequence models' epochs (``--max-epochs``, ``CHURN_MAX_EPOCHS``); empty for None,
    which keeps each family's own default."""
    if max_epochs is None:
        return {}
    return {"ops": {name: {"config": {"epochs": max_epochs}} for name in sequence_model_names()}}
