"""Hyperparameters of the session-continuation models, free of torch and scikit-learn so that the Dagster run
config of each model asset can be generated from them when the code location loads (as
:mod:`churn_dagster.training.ml.hyperparameters` does for the churn models, whose dataclasses the logistic regression
and XGBoost reuse here unchanged)."""

from __future__ import annotations

from dataclasses import dataclass, field

from churn_dagster.training.ml.hyperparameters import TrainConfig


@dataclass(frozen=True)
class PrefixNetwork:
    """The LSTM over a session's requests so far: how many of them it reads and its size."""

    max_steps: int = field(default=32, metadata={
        "ge": 1, "description": "Requests of the session so far that the LSTM reads; a longer prefix keeps its latest."})
    hidden_size: int = field(default=64, metadata={"ge": 1, "description": "LSTM hidden units."})
    num_layers: int = field(default=1, metadata={"ge": 1, "description": "Stacked LSTM layers."})
    dropout: float = field(default=0.2, metadata={"ge": 0, "lt": 1})

    def kwargs(self) -> dict:
        return {"hidden_size": self.hidden_size, "num_layers": self.num_layers, "dropout": self.dropout}


def prefix_training(**overrides) -> TrainConfig:
    """The LSTM's training: examples are many and short, so larger batches and fewer epochs than the churn
    LSTM, with early stopping on the validation loss (the shared loop keeps the best epoch's weights)."""
    defaults = dict(epochs=10, batch_size=256, early_stop_patience=3)
    return TrainConfig(**{**defaults, **overrides})
