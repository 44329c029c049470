"""The seven trend models of the DIGMN comparison and their hyperparameters, with defaults.

Plain dataclasses without torch or scikit-learn, like :mod:`churn_dagster.training.ml.hyperparameters` (whose
classes most of them reuse), so that each trend asset's ``dg.Config`` is generated from them when the code
location loads. Every model trains once per seed of :class:`TrendSeeds` (the paper repeats each experiment
with 5 seeds and reports mean ± std); the seed fields of the reused classes are set from it per run.

Every network trains with :meth:`TrainConfig.digmn` (Adam at 1e-3 halved every 20 epochs, weight decay 1e-5,
early stopping on validation): the paper gives these for DIGMN and nothing else for its baselines, and one
schedule for all keeps the comparison about the architectures. The orthogonality penalty and the exemption of
the basis matrices from weight decay reach only DIGMN, the one model with FC-D layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from churn_dagster.training.ml.hyperparameters import (
    DigmnConfig,
    LogisticConfig,
    TrainConfig,
    XGBConfig,
)

CLASSICAL_MODELS = ("logreg", "xgboost", "mlp")
SEQUENCE_MODELS = ("activity_lstm", "multichannel", "digmn", "digmn_static")
TREND_MODELS = CLASSICAL_MODELS + SEQUENCE_MODELS
TREND_SEEDS = (0, 1, 2, 3, 4)
# Fields of the reused classes that a trend run sets itself: the seed from TrendSeeds, and whether DIGMN's
# layers are dynamic from the model (DIGMN or its static ablation). They are left out of the run config.
FIXED_FIELDS = frozenset({"seed", "dynamic"})


@dataclass(frozen=True)
class TrendSeeds:
    """The seeds a trend model is trained with, once each."""

    seeds: list[int] = field(default_factory=lambda: list(TREND_SEEDS), metadata={
        "description": "One training run (and MLflow run) per seed; the report gives mean ± std over them."})

    def __post_init__(self) -> None:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be one or more distinct numbers, got {self.seeds}")


@dataclass(frozen=True)
class MlpConfig:
    """The paper's MLP baseline on the macro features (hidden layers {64, 32} are fixed by the paper)."""

    max_iter: int = field(default=200, metadata={
        "ge": 1, "description": "Epochs at most (scikit-learn stops early on a tenth of the training rows)."})


@dataclass(frozen=True)
class BaselineShape:
    """The LSTM width of the activity LSTM and of the multi-channel model's two LSTMs."""

    hidden_size: int = field(default=32, metadata={"ge": 1, "description": "LSTM hidden units."})


@dataclass(frozen=True)
class SessionWindow:
    """How much of a user's session history the session-reading networks see."""

    max_sessions: int = field(default=192, metadata={
        "ge": 1, "description": "The latest sessions of each user that the session LSTMs read."})


TREND_DEFAULTS: dict[str, tuple] = {
    "logreg": (TrendSeeds(), LogisticConfig()),
    "xgboost": (TrendSeeds(), XGBConfig()),
    "mlp": (TrendSeeds(), MlpConfig()),
    "activity_lstm": (TrendSeeds(), TrainConfig.digmn(), BaselineShape()),
    "multichannel": (TrendSeeds(), TrainConfig.digmn(), BaselineShape(), SessionWindow()),
    "digmn": (TrendSeeds(), TrainConfig.digmn(), DigmnConfig(), SessionWindow()),
    "digmn_static": (TrendSeeds(), TrainConfig.digmn(), DigmnConfig(dynamic=False), SessionWindow()),
}


def settings_of(params: tuple, cls: type):
    """The instance of ``cls`` among a model's hyperparameter dataclasses ``params``."""
    (found,) = [p for p in params if isinstance(p, cls)]
    return found
