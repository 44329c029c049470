"""The DIGMN paper's baselines for the trend tasks, on the same users and splits as DIGMN.

- On the macro features (the KPI aggregates): logistic regression and XGBoost (:mod:`churn_dagster.training.ml.classical`)
  and an MLP with hidden layers {64, 32}, each imputing and scaling on its training rows.
- :class:`ActivityLSTM`: an LSTM over the user's daily event-type counts (event types x observation days).
- :class:`MultiChannelNet`: the deep multi-channel model: the macro features through an MLP, the activity
  LSTM and a session LSTM over the per-session behaviour vectors (packed, so padding changes nothing), their
  states concatenated and classified.

Counts enter the networks as ``log1p``: a heavy day would otherwise dominate the LSTM's inputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.impute import SimpleImputer
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from churn_dagster.training.ml.networks import pack_steps, squeeze_binary

MLP_HIDDEN = (64, 32)


def fit_mlp(X_train: pd.DataFrame, y_train: np.ndarray, seed: int = 42, max_iter: int = 200) -> Pipeline:
    """The paper's MLP {64, 32} on the macro features: median imputation and scaling fit on the training rows,
    Adam with early stopping on a held-out tenth of them."""
    model = Pipeline([
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("scale", StandardScaler()),
        ("model", MLPClassifier(hidden_layer_sizes=MLP_HIDDEN, early_stopping=True, max_iter=max_iter,
                                random_state=seed)),
    ])
    return model.fit(X_train, y_train)


def _output_width(n_classes: int) -> int:
    return 1 if n_classes == 2 else n_classes


class ActivityLSTM(nn.Module):
    """An LSTM over daily event-type counts ``[B, days, event types]``; its last state is classified."""

    def __init__(self, n_event_types: int, hidden_size: int = 32, n_classes: int = 2):
        super().__init__()
        self.n_classes = _output_width(n_classes)
        self.lstm = nn.LSTM(n_event_types, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, self.n_classes)

    def encode(self, daily: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.lstm(torch.log1p(daily))
        return h_n[-1]

    def forward(self, daily: torch.Tensor) -> torch.Tensor:
        return squeeze_binary(self.head(self.encode(daily)), self.n_classes)


class MultiChannelNet(nn.Module):
    """Macro MLP + activity LSTM + session LSTM, concatenated and classified (the paper's deep multi-channel
    baseline). ``forward(macro [B, M], daily [B, days, E], sessions [B, T, S], lengths [B])``."""

    def __init__(self, n_macro: int, n_event_types: int, n_session_features: int, hidden_size: int = 32,
                 n_classes: int = 2):
        super().__init__()
        self.n_classes = _output_width(n_classes)
        self.macro = nn.Sequential(nn.Linear(n_macro, MLP_HIDDEN[0]), nn.ReLU(), nn.Linear(*MLP_HIDDEN), nn.ReLU())
        self.activity = ActivityLSTM(n_event_types, hidden_size)
        self.sessions = nn.LSTM(n_session_features, hidden_size, batch_first=True)
        self.head = nn.Linear(MLP_HIDDEN[1] + 2 * hidden_size, self.n_classes)

    def forward(self, macro: torch.Tensor, daily: torch.Tensor, sessions: torch.Tensor,
                lengths: torch.Tensor) -> torch.Tensor:
        _, (h_n, _) = self.sessions(pack_steps(sessions, lengths.clamp(min=1)))
        features = torch.cat([self.macro(macro), self.activity.encode(daily), h_n[-1]], dim=1)
        return squeeze_binary(self.head(features), self.n_classes)
