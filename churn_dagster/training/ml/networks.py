"""The two sequence networks of the reference study (thesis sections 4.2 and 4.3).

Both read a padded batch ``seq [B, T, 24]`` with the true ``lengths [B]`` and return logits: ``[B]`` when
``n_classes == 1`` (binary churn, one logit) and ``[B, n_classes]`` otherwise. Padding never changes an
output: the LSTM runs on a packed sequence, so it never sees a padded step, and the hybrid's attention
gives padded steps a score of -inf, hence a weight of exactly 0. Constructor defaults are the SPEC values.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from churn_dagster.stages.tensors.ml.data import SEQUENCE_DIM, STATIC_DIM


def pack_steps(seq: torch.Tensor, lengths: torch.Tensor) -> nn.utils.rnn.PackedSequence:
    """``seq`` [B, T, F] packed to its valid steps: an LSTM then never sees the padding."""
    # pack_padded_sequence wants the lengths on the CPU whatever the device of the data.
    return pack_padded_sequence(seq, lengths.detach().cpu(), batch_first=True, enforce_sorted=False)


def squeeze_binary(logits: torch.Tensor, n_classes: int) -> torch.Tensor:
    return logits.squeeze(-1) if n_classes == 1 else logits


class LSTMClassifier(nn.Module):
    """Sequence-only baseline: an LSTM whose last *valid* hidden state goes through LayerNorm, dropout
    and a linear layer. ``static`` is accepted and ignored so both networks share one call signature."""

    def __init__(
        self,
        n_features: int = SEQUENCE_DIM,
        hidden_size: int = 128,
        num_layers: int = 1,
        dropout: float = 0.2,
        n_classes: int = 1,
    ):
        super().__init__()
        self.n_classes = n_classes
        # nn.LSTM applies dropout only between stacked layers; with one layer it would only warn.
        self.lstm = nn.LSTM(
            n_features, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.head = nn.Sequential(nn.LayerNorm(hidden_size), nn.Dropout(dropout), nn.Linear(hidden_size, n_classes))

    def forward(self, seq: torch.Tensor, lengths: torch.Tensor, static: torch.Tensor | None = None) -> torch.Tensor:
        # With a packed input, h_n holds each sequence's state at its own last valid step, in batch order.
        _, (h_n, _) = self.lstm(pack_steps(seq, lengths))
        return squeeze_binary(self.head(h_n[-1]), self.n_classes)


class HybridLSTM(nn.Module):
    """Stacked LSTM + attention over its valid hidden states + an MLP over the static vector.

    Attention (multiplicative, Luong "general"): the query is the last valid hidden state ``q``; the score
    of step ``t`` is ``h_t . (W q) / sqrt(H)`` (the scaling keeps the softmax from saturating early in
    training), softmax runs over valid steps only, and the context is the weighted sum of the ``h_t``.
    The static vector passes through two Linear+ReLU layers to ``static_dim`` numbers; context and static
    code are concatenated, layer-normalised (which balances the two parts' scales), dropped out and
    classified by one linear layer.
    """

    def __init__(
        self,
        n_features: int = SEQUENCE_DIM,
        n_static: int = STATIC_DIM,
        hidden_size: int = 128,
        num_layers: int = 2,
        dropout: float = 0.2,
        static_hidden: int = 64,
        static_dim: int = 32,
        n_classes: int = 1,
    ):
        super().__init__()
        self.n_classes = n_classes
        self.lstm = nn.LSTM(
            n_features, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.query = nn.Linear(hidden_size, hidden_size, bias=False)
        self.static_mlp = nn.Sequential(
            nn.Linear(n_static, static_hidden), nn.ReLU(), nn.Linear(static_hidden, static_dim), nn.ReLU()
        )
        width = hidden_size + static_dim
        self.head = nn.Sequential(nn.LayerNorm(width), nn.Dropout(dropout), nn.Linear(width, n_classes))

    def forward(
        self,
        seq: torch.Tensor,
        lengths: torch.Tensor,
        static: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits, and with ``return_attention`` also the weights ``[B, T]`` (0 on padded steps)."""
        if static is None:
            raise ValueError("HybridLSTM needs the static vector")
        packed_out, (h_n, _) = self.lstm(pack_steps(seq, lengths))
        # Unpack to the input's own width so the weights line up with the input steps.
        states, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=seq.shape[1])
        query = h_n[-1]
        scores = torch.einsum("bth,bh->bt", states, self.query(query)) / math.sqrt(states.shape[-1])
        valid = torch.arange(seq.shape[1], device=seq.device)[None, :] < lengths.to(seq.device)[:, None]
        weights = torch.softmax(scores.float().masked_fill(~valid, float("-inf")), dim=1)
        context = torch.einsum("bt,bth->bh", weights.to(states.dtype), states)
        features = torch.cat([context, self.static_mlp(static)], dim=1)
        logits = squeeze_binary(self.head(features), self.n_classes)
        return (logits, weights) if return_attention else logits


MODELS = {"lstm": LSTMClassifier, "hybrid": HybridLSTM}


def build_model(kind: str, n_classes: int, **kwargs) -> nn.Module:
    """Construct ``"lstm"`` or ``"hybrid"`` with SPEC defaults, overridden by ``kwargs``."""
    if kind not in MODELS:
        raise ValueError(f"model kind must be one of {sorted(MODELS)}, got {kind!r}")
    return MODELS[kind](n_classes=n_classes, **kwargs)
