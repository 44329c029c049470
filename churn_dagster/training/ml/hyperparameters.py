"""Every hyperparameter of the model families and of the intent mining, with its default, bounds and meaning,
in one place.

Plain dataclasses without torch, scikit-learn or XGBoost, so that the Dagster run config of each model asset
can be generated from them (``studies/churn/config.py``) when the code location loads, without importing the
libraries that train. A field's metadata holds its bounds (``gt``, ``ge``, ``lt``, ``le``) and description.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run. ``plateau_patience`` / ``early_stop_patience`` of ``None``
    switch the LR schedule / early stopping off; an improvement means a validation loss lower than the
    best so far by more than ``min_delta``. ``plateau_patience`` counts as torch's ReduceLROnPlateau
    does: the LR halves once more than that many epochs in a row brought no improvement.
    ``lr_decay_every`` is the other schedule (torch's StepLR: the LR is multiplied by ``lr_decay_factor``
    every that many epochs); the two cannot be combined. ``weight_decay`` is Adam's L2 term, applied to the
    parameter groups of the model's ``optimizer_groups(weight_decay)`` when it has that method, else to
    every parameter; ``penalty_weight`` multiplies the model's ``regularization()`` in the training loss
    (models without that method add nothing)."""

    epochs: int = field(default=20, metadata={"ge": 1, "description": "Epochs (at most, with early stopping)."})
    batch_size: int = field(default=128, metadata={"ge": 1})
    lr: float = field(default=1e-3, metadata={"gt": 0, "description": "Adam learning rate."})
    seed: int = 42
    plateau_patience: int | None = field(default=None, metadata={"ge": 0, "description": "None: constant lr."})
    plateau_factor: float = field(default=0.5, metadata={"gt": 0, "lt": 1})
    early_stop_patience: int | None = field(default=None, metadata={"ge": 1, "description": "None: no early stop."})
    min_delta: float = field(default=1e-4, metadata={"ge": 0})
    amp: bool = field(default=True, metadata={"description": "float16 autocast on CUDA (ignored on the CPU)."})
    num_workers: int = field(default=0, metadata={"ge": 0, "description": "DataLoader worker processes."})
    lr_decay_every: int | None = field(default=None, metadata={
        "ge": 1, "description": "Step schedule: epochs between LR decays; None: no step schedule."})
    lr_decay_factor: float = field(default=0.5, metadata={"gt": 0, "lt": 1})
    weight_decay: float = field(default=0.0, metadata={"ge": 0, "description": "Adam L2 weight decay."})
    penalty_weight: float = field(default=0.0, metadata={
        "ge": 0, "description": "Weight of the model's regularization() term in the training loss."})

    def __post_init__(self) -> None:
        if self.plateau_patience is not None and self.lr_decay_every is not None:
            raise ValueError("choose one LR schedule: plateau_patience or lr_decay_every, not both")

    @classmethod
    def lstm(cls, **overrides) -> TrainConfig:
        return replace(cls(), **overrides)

    @classmethod
    def hybrid(cls, **overrides) -> TrainConfig:
        return replace(cls(epochs=50, plateau_patience=4, early_stop_patience=7), **overrides)

    @classmethod
    def digmn(cls, **overrides) -> TrainConfig:
        """The DIGMN paper's training (section 6.1.4): Adam at 1e-3 halved every 20 epochs, L2 weight decay
        1e-5 except on the FC-D bases, orthogonality penalty weight beta = 1e-2, early stopping. The paper
        gives no epoch count or patience; these are the hybrid's."""
        defaults = cls(epochs=50, lr_decay_every=20, lr_decay_factor=0.5, weight_decay=1e-5, penalty_weight=1e-2,
                       early_stop_patience=7)
        return replace(defaults, **overrides)


@dataclass(frozen=True)
class LogisticConfig:
    """Hyperparameters of the logistic regression."""

    C: float = field(default=1.0, metadata={"gt": 0, "description": "Inverse L2 penalty."})
    max_iter: int = field(default=2000, metadata={"ge": 1, "description": "Solver iterations at most."})


@dataclass(frozen=True)
class XGBConfig:
    """Hyperparameters of the gradient-boosted trees."""

    n_estimators: int = field(default=2000, metadata={
        "ge": 1, "description": "Boosting rounds at most: early stopping picks the number actually used."})
    learning_rate: float = field(default=0.05, metadata={"gt": 0})
    max_depth: int = field(default=6, metadata={"ge": 1})
    subsample: float = field(default=0.8, metadata={"gt": 0, "le": 1})
    colsample_bytree: float = field(default=0.8, metadata={"gt": 0, "le": 1})
    min_child_weight: float = field(default=1.0, metadata={"ge": 0})
    early_stopping_rounds: int = field(default=50, metadata={"ge": 1})
    seed: int = 42
    n_jobs: int | None = field(default=None, metadata={"description": "Threads; None uses every CPU."})


@dataclass(frozen=True)
class NetworkShape:
    """The size of a sequence network (the rest of its architecture is fixed by its class)."""

    hidden_size: int = field(default=128, metadata={"ge": 1, "description": "LSTM hidden units per layer."})
    num_layers: int = field(default=1, metadata={"ge": 1, "description": "Stacked LSTM layers."})
    dropout: float = field(default=0.2, metadata={"ge": 0, "lt": 1})

    def kwargs(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class IntentConfig:
    """Hyperparameters of the session-intent mining (:mod:`churn_dagster.studies.trends.ml.intents`): LDA over sessions as
    bags of event types, the number of intents K searched over ``k_min..k_max`` by held-out perplexity."""

    k_min: int = field(default=2, metadata={"ge": 1, "description": "Fewest intents (LDA topics) tried."})
    k_max: int = field(default=10, metadata={"ge": 1, "description": "Most intents tried (inclusive)."})
    held_out_share: float = field(default=0.2, metadata={
        "gt": 0, "lt": 1, "description": "Share of the training sessions held out to score each K's perplexity."})
    k_tolerance: float = field(default=0.01, metadata={
        "ge": 0, "description": "The smallest K whose held-out perplexity is within this relative margin of the "
                                "lowest wins (0: the strict minimum)."})
    max_iter: int = field(default=10, metadata={"ge": 1, "description": "LDA passes (batch variational EM)."})
    max_sessions: int | None = field(default=200_000, metadata={
        "ge": 2, "description": "Fit on a seeded sample of at most this many non-empty training sessions "
                               "(None: all); bounds the memory of the distinct-session matrix."})
    seed: int = 42


@dataclass(frozen=True)
class DigmnConfig:
    """The size of a DIGMN network (:mod:`churn_dagster.studies.trends.ml.digmn`); the paper's values are the defaults.
    The input widths (behaviour features, intents, macro features) come from the data."""

    hidden_size: int = field(default=32, metadata={"ge": 1, "description": "Behaviour (session) LSTM units."})
    intent_hidden: int = field(default=32, metadata={"ge": 1, "description": "Intent LSTM units."})
    meta_hidden: int = field(default=32, metadata={"ge": 1, "description": "Meta network hidden units."})
    n_bases: int = field(default=4, metadata={
        "ge": 1, "description": "Basis parameter sets d per FC-D layer (the paper searched 2..10)."})
    n_layers: int = field(default=3, metadata={
        "ge": 1, "description": "FC-D layers L, widths halving from the input width (searched 1..5)."})
    dynamic: bool = field(default=True, metadata={
        "description": "False: the static ablation, linear layers of the same parameter count."})

    def kwargs(self) -> dict:
        return asdict(self)
