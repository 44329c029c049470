"""The DIGMN paper's baselines: shapes, padding invariance, and that each learns a planted signal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from churn_dagster.studies.trends.ml.baselines import ActivityLSTM, MultiChannelNet, fit_mlp


def test_output_shapes_follow_the_task():
    daily = torch.rand(5, 14, 4)
    assert ActivityLSTM(4, n_classes=2)(daily).shape == (5,)  # one logit for a binary task
    assert ActivityLSTM(4, n_classes=3)(daily).shape == (5, 3)


def test_the_multichannel_session_lstm_ignores_padding():
    torch.manual_seed(0)
    net = MultiChannelNet(n_macro=6, n_event_types=4, n_session_features=5, n_classes=3).eval()
    macro, daily = torch.randn(3, 6), torch.rand(3, 14, 4)
    sessions, lengths = torch.randn(3, 4, 5), torch.tensor([4, 2, 1])
    padded = torch.cat([sessions, torch.full((3, 6, 5), 99.0)], dim=1)  # garbage beyond every length
    with torch.no_grad():
        assert torch.allclose(net(macro, daily, sessions, lengths), net(macro, daily, padded, lengths), atol=1e-6)
        net(macro, daily, sessions, torch.tensor([4, 2, 0]))  # a user without a session still gets a prediction


def test_the_mlp_learns_a_planted_signal_from_the_macro_features():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(1200, 5)), columns=list("abcde"))
    y = (X["a"] - X["b"] + 0.3 * rng.normal(size=1200) > 0).astype(int).to_numpy()
    model = fit_mlp(X[:900], y[:900], seed=1)
    assert roc_auc_score(y[900:], model.predict_proba(X[900:])[:, 1]) > 0.95


def test_the_activity_lstm_learns_a_trend_of_daily_activity():
    """Label: more events in the second week than in the first, which only the order of the days tells."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    slope = rng.choice([-1.0, 1.0], size=400)
    days = np.arange(14) - 6.5
    rate = np.clip(3 + slope[:, None] * 0.3 * days[None, :], 0.1, None)
    daily = torch.tensor(rng.poisson(rate[:, :, None], size=(400, 14, 3)), dtype=torch.float32)
    y = torch.tensor(slope > 0, dtype=torch.float32)
    net = ActivityLSTM(3, hidden_size=8, n_classes=2)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: a second thread only adds contention on a busy machine
    try:
        for _ in range(40):
            optimiser.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(daily[:300]), y[:300])
            loss.backward()
            optimiser.step()
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        assert roc_auc_score(y[300:].numpy(), net(daily[300:]).numpy()) > 0.95
