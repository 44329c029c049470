"""The networks are mask-aware: padding, however long and whatever it holds, never changes an output."""

from __future__ import annotations

import pytest
import torch

from churn_dagster.stages.tensors.ml.data import STATIC_DIM
from churn_dagster.training.ml.networks import HybridLSTM, LSTMClassifier, build_model

KINDS = ("lstm", "hybrid")
ATOL = 1e-5


def _model(kind: str, n_classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(kind, n_classes).eval()


def _inputs(lengths=(9, 4, 1, 6), seed=1):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    seq = torch.randn(len(lengths), int(lengths.max()), 24, generator=g)
    seq[torch.arange(seq.shape[1])[None, :] >= lengths[:, None]] = 0.0
    return seq, lengths, torch.randn(len(lengths), STATIC_DIM, generator=g)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_classes", [1, 5])
def test_output_shapes(kind, n_classes):
    seq, lengths, static = _inputs()
    out = _model(kind, n_classes)(seq, lengths, static)
    assert out.shape == ((4,) if n_classes == 1 else (4, n_classes))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n_classes", [1, 5])
def test_longer_padding_with_garbage_changes_nothing(kind, n_classes):
    model = _model(kind, n_classes)
    seq, lengths, static = _inputs()
    with torch.no_grad():
        reference = model(seq, lengths, static)
        for extra, fill in [(0, 1e6), (7, 0.0), (30, -3e4), (5, float("nan")), (5, float("inf"))]:
            padded = torch.cat([seq, torch.zeros(len(seq), extra, 24)], dim=1)
            padded[torch.arange(padded.shape[1])[None, :] >= lengths[:, None]] = fill
            assert torch.allclose(model(padded, lengths, static), reference, atol=ATOL, rtol=0), (extra, fill)


@pytest.mark.parametrize("kind", KINDS)
def test_a_sequence_scores_the_same_alone_and_beside_longer_ones(kind):
    model = _model(kind, 5)
    seq, lengths, static = _inputs(lengths=(3, 40, 17, 3))
    with torch.no_grad():
        batched = model(seq, lengths, static)
        for i in range(len(lengths)):
            alone = model(seq[i : i + 1, : lengths[i]], lengths[i : i + 1], static[i : i + 1])
            assert torch.allclose(alone[0], batched[i], atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_no_gradient_reaches_padded_steps(kind):
    model = _model(kind, 1)
    seq, lengths, static = _inputs()
    seq.requires_grad_(True)
    model(seq, lengths, static).sum().backward()
    valid = torch.arange(seq.shape[1])[None, :] < lengths[:, None]
    assert (seq.grad[~valid] == 0).all()
    assert (seq.grad[valid].abs().sum(dim=-1) > 0).all()


def test_attention_is_a_distribution_over_valid_steps_only():
    model = _model("hybrid", 1)
    seq, lengths, static = _inputs()
    padded = torch.cat([seq, torch.full((len(seq), 5, 24), 7.0)], dim=1)
    with torch.no_grad():
        _, weights = model(padded, lengths, static, return_attention=True)
    assert weights.shape == padded.shape[:2]
    valid = torch.arange(padded.shape[1])[None, :] < lengths[:, None]
    assert (weights[~valid] == 0).all()
    assert (weights[valid] > 0).all()
    assert torch.allclose(weights.sum(dim=1), torch.ones(len(seq)))
    assert torch.equal(weights[lengths == 1][:, 0], torch.ones(int((lengths == 1).sum())))


def test_static_vector_matters_to_the_hybrid_only():
    seq, lengths, static = _inputs()
    lstm, hybrid = _model("lstm", 1), _model("hybrid", 1)
    with torch.no_grad():
        assert torch.equal(lstm(seq, lengths, static), lstm(seq, lengths))
        assert not torch.allclose(hybrid(seq, lengths, static), hybrid(seq, lengths, static + 1))
    with pytest.raises(ValueError):
        hybrid(seq, lengths)


def test_defaults_are_the_spec_values():
    lstm, hybrid = LSTMClassifier(), HybridLSTM()
    assert (lstm.lstm.num_layers, lstm.lstm.hidden_size, lstm.lstm.input_size) == (1, 128, 24)
    assert (hybrid.lstm.num_layers, hybrid.lstm.hidden_size, hybrid.lstm.dropout) == (2, 128, 0.2)
    assert isinstance(lstm.head[0], torch.nn.LayerNorm) and lstm.head[1].p == 0.2
    assert hybrid.static_mlp[-2].out_features == 32
    assert sum(isinstance(m, torch.nn.ReLU) for m in hybrid.static_mlp) == 2
    assert hybrid.head[0].normalized_shape == (128 + 32,) and lstm.n_classes == hybrid.n_classes == 1
    with pytest.raises(ValueError):
        build_model("transformer", 1)
