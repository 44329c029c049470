"""The eight model assets' names and their run config, derived from the hyperparameter dataclasses of ``ml/``.

Each family's hyperparameters are defined once, in ``ml/``: :class:`~churn_dagster.ml.train.TrainConfig` and
:class:`~churn_dagster.ml.models.NetworkShape` for the sequence models, :class:`~churn_dagster.ml.classical.
LogisticConfig` and :class:`~churn_dagster.ml.classical.XGBConfig` for the classical ones. The ``dg.Config``
of each asset is generated from those dataclasses (:mod:`churn_dagster.ml.hyperparameters`, free of torch and
scikit-learn, so loading the code location stays light) (every field, its type, the family's default, and the
bounds and description in the field's metadata), and :func:`hyperparameters` turns a run's config back into
them, so a new hyperparameter appears in the launchpad without being mapped here by hand.
"""

from __future__ import annotations

import dataclasses
import typing

import dagster as dg
import pydantic

from churn_dagster.defs.constants import TARGETS
from churn_dagster.ml.hyperparameters import (
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
_BOUNDS = ("gt", "ge", "lt", "le", "description")


def model_name(family: str, target: str) -> str:
    return f"{family}_{TARGET_SUFFIX[target]}"


def sequence_model_names() -> list[str]:
    return [model_name(f, t) for f in SEQUENCE_FAMILIES for t in TARGETS]


def _fields(default, exclude: frozenset[str]) -> dict[str, tuple]:
    hints = typing.get_type_hints(type(default))
    return {
        f.name: (hints[f.name], pydantic.Field(default=getattr(default, f.name),
                                               **{k: v for k, v in f.metadata.items() if k in _BOUNDS}))
        for f in dataclasses.fields(default) if f.name not in exclude
    }


def config_class(name: str, doc: str, *defaults, exclude: frozenset[str] = frozenset()) -> type[dg.Config]:
    """A ``dg.Config`` named ``name`` whose fields are those of the hyperparameter dataclass instances
    ``defaults``, with their values as defaults and their metadata's bounds and descriptions; the fields named
    in ``exclude`` are set by the code, not by the run config, and left out."""
    fields = {field: spec for default in defaults for field, spec in _fields(default, exclude).items()}
    return pydantic.create_model(name, __base__=dg.Config, __doc__=doc, __module__=__name__, **fields)


def config_values(defaults: tuple, config: dg.Config) -> tuple:
    """The hyperparameter dataclasses ``defaults`` with the values a run's ``config`` holds for their fields
    (a field the config does not have keeps its default)."""
    return tuple(
        dataclasses.replace(default, **{f.name: getattr(config, f.name) for f in dataclasses.fields(default)
                                        if hasattr(config, f.name)})
        for default in defaults
    )


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
