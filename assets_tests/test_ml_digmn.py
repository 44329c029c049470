"""DIGMN (studies/trends/ml/digmn.py) and the training loop's hooks for it: hand-checkable layer maths, mask-awareness,
the static ablation's parameter count, the optimizer groups, and learning a planted intent x behaviour rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from churn_dagster.stages.tensors.ml.data import make_loader
from churn_dagster.studies.trends.ml.digmn import (
    DIGMN,
    FCD,
    MetaNetwork,
    StaticDIGMN,
    halving_widths,
    parameter_counts,
    session_intents,
)
from churn_dagster.training.ml.hyperparameters import DigmnConfig, TrainConfig
from churn_dagster.training.ml.train import _optimizer_groups, fit, predict_proba, seed_everything

N_BEHAVIOUR, N_INTENTS, N_STATIC = 6, 3, 5
ATOL = 1e-5


@pytest.fixture(autouse=True)
def one_thread():
    """Small batches: a second torch thread only adds contention on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _inputs(lengths=(7, 3, 1, 5), seed=1):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    seq = torch.randn(len(lengths), int(lengths.max()), N_BEHAVIOUR + N_INTENTS, generator=g)
    seq[torch.arange(seq.shape[1])[None, :] >= lengths[:, None]] = 0.0
    return seq, lengths, torch.randn(len(lengths), N_STATIC, generator=g)


def _model(cls=DIGMN, n_classes=1, **kwargs):
    torch.manual_seed(0)
    return cls(N_BEHAVIOUR, N_INTENTS, N_STATIC, n_classes, **kwargs).eval()


def test_fcd_with_one_basis_is_a_linear_layer():
    torch.manual_seed(0)
    linear, fcd = nn.Linear(5, 3), FCD(5, 3, n_bases=1)
    with torch.no_grad():
        fcd.weight[0].copy_(linear.weight)
        fcd.bias[0].copy_(linear.bias)
    h = torch.randn(4, 5)
    torch.testing.assert_close(fcd(h, torch.ones(4, 1)), linear(h))


def test_fcd_mixes_its_bases_per_sample():
    fcd = FCD(2, 1, n_bases=2)
    with torch.no_grad():
        fcd.weight.copy_(torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]]))  # W1 picks h[0], W2 picks h[1]
        fcd.bias.copy_(torch.tensor([[10.0], [20.0]]))
    h = torch.tensor([[1.0, 2.0], [1.0, 2.0]])
    a = torch.tensor([[1.0, 0.0], [0.25, 0.75]])
    # sample 1: 1*1 + 10; sample 2: 0.25*1 + 0.75*2 + 0.25*10 + 0.75*20
    torch.testing.assert_close(fcd(h, a), torch.tensor([[11.0], [1.75 + 17.5]]))


def test_orthogonality_penalty_is_zero_for_orthogonal_bases_whatever_their_norms():
    fcd = FCD(2, 2, n_bases=2)
    with torch.no_grad():
        fcd.weight.copy_(torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 3.0], [5.0, 0.0]]]))
    assert fcd.orthogonality_penalty().item() == 0.0


def test_orthogonality_penalty_by_hand():
    fcd = FCD(2, 2, n_bases=2)
    with torch.no_grad():
        fcd.weight.copy_(torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[1.0, 0.0], [1.0, 0.0]]]))
    # flattened rows (1,2,3,4) and (1,0,1,0): inner product 4; both off-diagonal entries of W W^T - I
    # are 4 and the diagonal is masked out, so the penalty is 4^2 + 4^2 = 32.
    assert fcd.orthogonality_penalty().item() == pytest.approx(32.0)


def test_fresh_bases_start_orthogonal_with_linear_scale():
    torch.manual_seed(0)
    fcd = FCD(81, 40, n_bases=4)
    assert fcd.orthogonality_penalty().item() < 1e-8
    assert fcd.weight.abs().max().item() < 3 / 81**0.5  # about nn.Linear's bound 1/sqrt(in)


def test_meta_network_weights_are_a_softmax():
    torch.manual_seed(0)
    a = MetaNetwork(intent_dim=7, n_bases=4)(torch.randn(16, 7) * 5)
    assert a.shape == (16, 4)
    torch.testing.assert_close(a.sum(dim=1), torch.ones(16))
    assert ((a > 0) & (a < 1)).all()


def test_session_intents_are_cosine_similarities():
    topics = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    freq = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]])
    expected = torch.tensor([[0.5**0.5, 0.0, 1.0], [0.0, 0.0, 0.0]])  # an empty session matches nothing
    torch.testing.assert_close(session_intents(freq, topics), expected)


@pytest.mark.parametrize("cls", [DIGMN, StaticDIGMN])
@pytest.mark.parametrize("n_classes", [1, 3])
def test_output_shapes_and_intents_given_apart(cls, n_classes):
    model = _model(cls, n_classes)
    seq, lengths, static = _inputs()
    out = model(seq, lengths, static)
    assert out.shape == ((4,) if n_classes == 1 else (4, n_classes))
    apart = model(seq[..., :N_BEHAVIOUR], lengths, static, intent=seq[..., N_BEHAVIOUR:])
    torch.testing.assert_close(apart, out)


@pytest.mark.parametrize("cls", [DIGMN, StaticDIGMN])
def test_padding_with_garbage_changes_neither_lstm_nor_the_logits(cls):
    model = _model(cls, 3)
    seq, lengths, static = _inputs()
    garbage = torch.randn(seq.shape[0], 6, seq.shape[2]) * 100
    longer = torch.cat([seq, garbage], dim=1)
    longer[torch.arange(longer.shape[1])[None, :] < lengths[:, None]] = seq[
        torch.arange(seq.shape[1])[None, :] < lengths[:, None]]
    with torch.no_grad():
        (b0, i0), (b1, i1) = model.encode(seq, lengths), model.encode(longer, lengths)
        torch.testing.assert_close(b1, b0, atol=ATOL, rtol=0)  # behaviour LSTM
        torch.testing.assert_close(i1, i0, atol=ATOL, rtol=0)  # intent LSTM
        torch.testing.assert_close(model(longer, lengths, static), model(seq, lengths, static), atol=ATOL, rtol=0)


def test_a_users_output_does_not_depend_on_the_rest_of_the_batch():
    model = _model()
    seq, lengths, static = _inputs()
    with torch.no_grad():
        alone = model(seq[2:3, :1], lengths[2:3], static[2:3])
        torch.testing.assert_close(model(seq, lengths, static)[2:3], alone, atol=ATOL, rtol=0)


def test_widths_and_parameter_counts_by_hand():
    n_in = 32 + 32 + 17  # both LSTM states and the 17 KPI aggregates
    counts = parameter_counts(n_in, n_layers=3, n_classes=1, n_bases=4)
    assert counts["dynamic_widths"] == [40, 20, 10] == halving_widths(n_in, 3)
    # FC-D: 4*(81*40+40) + 4*(40*20+20) + 4*(20*10+10) = 13120 + 3280 + 840, plus the output layer 10+1
    assert counts["dynamic"] == 17251
    assert counts["static_widths"] == [112, 56, 30]
    # Linear: 81*112+112 + 112*56+56 + 56*30+30 = 9184 + 6328 + 1710, plus the output layer 30+1
    assert counts["static"] == 17253


@pytest.mark.parametrize(("n_layers", "n_classes", "n_bases"), [(1, 1, 4), (2, 3, 4), (3, 3, 2), (3, 1, 8), (5, 1, 4)])
def test_static_ablation_matches_the_predictor_parameter_count(n_layers, n_classes, n_bases):
    kwargs = {"n_layers": n_layers, "n_bases": n_bases}
    dynamic, static = _model(DIGMN, n_classes, **kwargs), _model(StaticDIGMN, n_classes, **kwargs)
    assert static.meta is None and not any(isinstance(m, FCD) for m in static.modules())
    d, s = dynamic.predictor_parameters(), static.predictor_parameters()
    n_in = 32 + 32 + N_STATIC
    assert (d, s) == (parameter_counts(n_in, n_layers, n_classes, n_bases)["dynamic"],
                      parameter_counts(n_in, n_layers, n_classes, n_bases)["static"])
    assert abs(d - s) / d < 0.01


def test_weight_decay_spares_only_the_basis_matrices():
    model = _model()
    groups = _optimizer_groups(model, 1e-5)
    decayed, spared = groups
    assert spared["weight_decay"] == 0.0 and decayed["weight_decay"] == 1e-5
    assert {id(p) for p in spared["params"]} == {id(layer.weight) for layer in model.layers}
    everything = {id(p) for p in model.parameters()}
    assert {id(p) for p in decayed["params"]} == everything - {id(p) for p in spared["params"]}
    assert all(id(layer.bias) in {id(p) for p in decayed["params"]} for layer in model.layers)
    # A model without the hook gets one group with the configured decay.
    (single,) = _optimizer_groups(nn.Linear(2, 1), 1e-5)
    assert single["weight_decay"] == 1e-5 and len(single["params"]) == 2


def test_digmn_training_defaults():
    config, shape = TrainConfig.digmn(), DigmnConfig()
    assert (config.lr, config.lr_decay_every, config.lr_decay_factor) == (1e-3, 20, 0.5)
    assert (config.weight_decay, config.penalty_weight, config.plateau_patience) == (1e-5, 1e-2, None)
    assert config.early_stop_patience is not None
    assert shape.kwargs() == {"hidden_size": 32, "intent_hidden": 32, "meta_hidden": 32, "n_bases": 4,
                              "n_layers": 3, "dynamic": True}
    with pytest.raises(ValueError, match="one LR schedule"):
        TrainConfig(plateau_patience=2, lr_decay_every=5)


# --- a planted signal ---------------------------------------------------------------------------------

PLANTED_BEHAVIOUR = 8
PLANTED_INTENTS = 4


def _planted(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.float32]]:
    """Each user has a dominant intent k and a behaviour vector x, seen through 2-6 noisy sessions; the
    user churns iff ``x . w_k > 0``, with one random rule ``w_k`` per intent: the label is an interaction
    of the intent and the behaviour, and neither alone says anything about it. Inputs are z-scored-like
    (the intent channels are centred), as the project's normalisation would make them."""
    rng = np.random.default_rng(seed)
    rules = np.random.default_rng(0).normal(size=(PLANTED_INTENTS, PLANTED_BEHAVIOUR))
    items = []
    for _ in range(n):
        k, x, t = rng.integers(PLANTED_INTENTS), rng.normal(size=PLANTED_BEHAVIOUR), rng.integers(2, 7)
        behaviour = x + 0.3 * rng.normal(size=(t, PLANTED_BEHAVIOUR))
        intents = 0.3 * rng.normal(size=(t, PLANTED_INTENTS)) - 2.0 / PLANTED_INTENTS
        intents[:, k] += 2.0
        seq = np.concatenate([behaviour, intents], axis=1).astype(np.float32)
        items.append((seq, rng.normal(size=N_STATIC).astype(np.float32), np.float32(x @ rules[k] > 0)))
    return items


def _fit_planted(cls, seed: int, epochs: int):
    train, val = _planted(2000, seed), _planted(600, seed + 1000)
    seed_everything(seed)
    model = cls(PLANTED_BEHAVIOUR, PLANTED_INTENTS, N_STATIC)
    config = TrainConfig.digmn(epochs=epochs, batch_size=64, seed=seed)
    return fit(model, make_loader(train, 64, True, seed), make_loader(val, 256), config, device="cpu")


def test_penalty_and_step_schedule_reach_the_training_loop():
    small = _planted(200, 3), _planted(100, 4)
    penalties = {}
    for weight in (0.0, 1.0):
        seed_everything(0)
        model = DIGMN(PLANTED_BEHAVIOUR, PLANTED_INTENTS, N_STATIC)
        with torch.no_grad():  # start far from orthogonal: every basis the same matrix
            for layer in model.layers:
                layer.weight.copy_(layer.weight[:1].expand_as(layer.weight))
        penalties[weight] = [model.regularization().item()]
        config = TrainConfig.digmn(epochs=5, lr=1e-2, lr_decay_every=2, penalty_weight=weight, early_stop_patience=None)
        result = fit(model, make_loader(small[0], 64, True, 0), make_loader(small[1], 64), config, device="cpu",
                     on_epoch=lambda *_, m=model, w=weight: penalties[w].append(m.regularization().item()))
        assert [r.lr for r in result.history] == pytest.approx([1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3])
    # Without the penalty the identical bases stay nearly identical; with it they are pushed apart.
    assert penalties[0.0][-1] > 0.5 * penalties[0.0][0]
    assert penalties[1.0][-1] < 0.1 * penalties[1.0][0]


def test_digmn_learns_a_planted_intent_by_behaviour_rule():
    """End to end through the shared loop with the paper's training settings (penalty, two optimizer groups,
    step schedule): a few seconds on the CPU. Here the rule lies in the behaviour sessions, which both models
    read through the same LSTM, and the static ablation learns it as fast (its layers are wider): both are held
    to the same bar, far above chance. Where DIGMN's design pays is the next test."""
    for cls in (DIGMN, StaticDIGMN):
        result = _fit_planted(cls, seed=0, epochs=15)
        assert result.history[result.best_epoch - 1].val_metrics["roc_auc"] > 0.9, cls.__name__


PLANTED_MACRO = 64


def _planted_by_intent(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.float32]]:
    """The trend depends on the intent mix: each user's sessions mix the 4 intents with one dominant, and the
    dominant intent selects which of 4 random linear rules over the user's 64 macro features gives the label.
    The behaviour channels are noise. FC-D layers give each intent its own weights over the macro features
    (the meta network routes by intent); static layers must carve the same routing out of ReLU units."""
    rng = np.random.default_rng(seed)
    rules = np.random.default_rng(0).normal(size=(PLANTED_INTENTS, PLANTED_MACRO))
    items = []
    for _ in range(n):
        k, t, macro = rng.integers(PLANTED_INTENTS), rng.integers(2, 7), rng.normal(size=PLANTED_MACRO)
        intents = 0.3 * rng.normal(size=(t, PLANTED_INTENTS)) - 2.0 / PLANTED_INTENTS
        intents[:, k] += 2.0
        seq = np.concatenate([rng.normal(size=(t, PLANTED_BEHAVIOUR)), intents], axis=1).astype(np.float32)
        items.append((seq, macro.astype(np.float32), np.float32(macro @ rules[k] > 0)))
    return items


def test_digmn_beats_its_static_ablation_where_the_intent_mix_selects_the_rule():
    """Same data, same loop, same parameter count in the predictor, seeds 0 and 1, AUC on 600 unseen users.
    Measured: DIGMN 0.973 and 0.972 against 0.858 and 0.877, so the 0.03 margin asked is far from the noise;
    the continuous-mix variant of this signal (Dirichlet mixes weighting the 4 rules) gave validation AUCs of
    0.808-0.867 against 0.780-0.820 over seeds 0-2."""
    test_set = _planted_by_intent(600, 2000)
    aucs = {}
    for cls in (DIGMN, StaticDIGMN):
        for seed in (0, 1):
            train, val = _planted_by_intent(2000, seed), _planted_by_intent(600, seed + 1000)
            seed_everything(seed)
            model = cls(PLANTED_BEHAVIOUR, PLANTED_INTENTS, PLANTED_MACRO)
            fit(model, make_loader(train, 64, True, seed), make_loader(val, 256),
                TrainConfig.digmn(epochs=20, batch_size=64, seed=seed), device="cpu")
            p = predict_proba(model, make_loader(test_set, 256), "cpu")
            aucs[cls.__name__, seed] = roc_auc_score([y for _, _, y in test_set], p)
    for seed in (0, 1):
        assert aucs["DIGMN", seed] > aucs["StaticDIGMN", seed] + 0.03, aucs
    assert np.mean([aucs["DIGMN", s] for s in (0, 1)]) > 0.93, aucs
