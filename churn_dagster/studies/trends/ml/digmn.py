"""DIGMN, the Dynamic Intent Guided Meta Network (WSDM 2023, section 5), and its static ablation.

A user is a sequence of sessions. Each session has behaviour features (event-type frequencies and session
context, ``n_behaviour`` numbers) and an intent vector (``n_intents`` numbers, the cosine similarity of
its event frequencies to each basic intent, eq. 2: :func:`session_intents`). Two 1-layer LSTMs read them
(behaviour evolution and intent evolution layers); both run on packed sequences, so padding never changes
an output. The meta network turns the last valid intent state into softmax weights ``a [B, d]`` (eq. 6),
and each FC-D layer of the meta predictor uses the per-user weights ``sum_k a_k W_k`` and bias
``sum_k a_k b_k`` (eqs. 5, 7). The predictor reads ``[behaviour state, intent state, macro features]``
through ``n_layers`` FC-D layers whose widths halve (ReLU after each), then one plain linear output layer.

:class:`StaticDIGMN` is the ablation of section 6.2: plain ``nn.Linear`` layers in place of the FC-D
layers, widened so that they hold as many parameters as the FC-D layers they replace (the FC-D stack has
``d * (m * n + n)`` per layer against ``m * n + n``); :func:`static_widths` chooses the widths and
:func:`parameter_counts` reports both counts. The static model has no meta network. At the defaults
(input width 32 + 32 + 17 KPI aggregates = 81, d = 4, binary): FC-D widths 40, 20, 10 hold 17,251
parameters with the output layer, the static widths 112, 56, 30 hold 17,253; the meta network's 1,188 have
no counterpart in the static model.

Training hooks read by :func:`churn_dagster.training.ml.train.fit`: ``regularization()`` (the orthogonality penalty
of eq. 9 summed over the FC-D layers) and ``optimizer_groups(weight_decay)`` (weight decay on every
parameter except the FC-D basis matrices, as the paper's training section prescribes).
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import nn

from churn_dagster.training.ml.networks import pack_steps, squeeze_binary


def session_intents(event_freq: torch.Tensor, topics: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Eq. 2: the cosine similarity of each session's event frequencies ``[..., E]`` to each basic intent
    ``topics [K, E]``, as ``[..., K]``. A session without events has similarity 0 to every intent."""
    num = event_freq @ topics.T
    den = event_freq.norm(dim=-1, keepdim=True) * topics.norm(dim=-1)
    return num / den.clamp_min(eps)


class FCD(nn.Module):
    """A fully connected layer with dynamic parameters: ``n_bases`` basis weight matrices ``[n_bases,
    out, in]`` and basis biases ``[n_bases, out]``, mixed per sample by the weights ``a``."""

    def __init__(self, in_features: int, out_features: int, n_bases: int):
        super().__init__()
        self.in_features, self.out_features, self.n_bases = in_features, out_features, n_bases
        self.weight = nn.Parameter(torch.empty(n_bases, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(n_bases, out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each basis starts as nn.Linear's initialisation would (so one basis is exactly a Linear layer's
        start), then the bases are made mutually orthogonal with their norms kept: eq. 9 wants them
        orthogonal, and starting there spares the first steps a large penalty gradient. (When ``d`` exceeds
        ``in * out`` they cannot all be orthogonal, and stay as drawn.)"""
        bound = 1 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)
        flat = self.weight.detach().reshape(self.n_bases, -1)
        if 1 < self.n_bases <= flat.shape[1]:
            q, _ = torch.linalg.qr(flat.T)  # [in*out, d], orthonormal columns
            with torch.no_grad():
                self.weight.copy_((q.T * flat.norm(dim=1, keepdim=True)).reshape_as(self.weight))

    def forward(self, h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """``h [B, in]``, ``a [B, n_bases]`` (softmax weights) -> ``[B, out]``."""
        w_hat = torch.einsum("bd,doi->boi", a, self.weight)  # eq. 7, one matrix per sample
        b_hat = a @ self.bias
        return torch.einsum("boi,bi->bo", w_hat, h) + b_hat

    def orthogonality_penalty(self) -> torch.Tensor:
        """Eq. 9 for this layer: ``||(W W^T - I) * (1 - I)||_F^2`` with ``W [d, out*in]`` the flattened
        bases as rows, i.e. the sum of squared inner products between distinct bases (norms are free)."""
        w = self.weight.reshape(self.n_bases, -1)
        gram = w @ w.T
        off_diagonal = gram - torch.diag_embed(torch.diagonal(gram))
        return off_diagonal.pow(2).sum()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, n_bases={self.n_bases}"


class MetaNetwork(nn.Module):
    """Eq. 6: ``a = softmax(W2 ReLU(W1 i + b1) + b2)``, ``i [B, intent_dim]`` -> ``a [B, n_bases]``."""

    def __init__(self, intent_dim: int, n_bases: int, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(intent_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_bases))

    def forward(self, intent: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(intent), dim=-1)


def halving_widths(n_in: int, n_layers: int) -> list[int]:
    """The FC-D widths: each layer's output is half its input (at least 1)."""
    widths, w = [], n_in
    for _ in range(n_layers):
        w = max(1, w // 2)
        widths.append(w)
    return widths


def _stack_params(n_in: int, widths: list[int], n_classes: int, n_bases: int = 1) -> int:
    """Parameters of hidden layers ``widths`` (each with ``n_bases`` copies) plus a linear output layer."""
    sizes = [n_in, *widths]
    hidden = sum(n_bases * (m * n + n) for m, n in pairwise(sizes))
    return hidden + widths[-1] * n_classes + n_classes


def static_widths(n_in: int, n_layers: int, n_classes: int, n_bases: int) -> list[int]:
    """Hidden widths of plain linear layers holding as many parameters as the FC-D stack of
    :func:`halving_widths` (output layer included on both sides). The widths keep the halving shape:
    every width ``w1`` of the first layer is tried, each later layer halves (rounded), and the last one is
    free within ``[w/4, w]`` of its predecessor ``w``, which fine-tunes the count; the smallest difference
    wins, ties going to the shape closest to halving."""
    target = _stack_params(n_in, halving_widths(n_in, n_layers), n_classes, n_bases)
    best: tuple | None = None
    for w1 in range(1, target + 1):
        if n_in * w1 > target:  # the first layer alone is already too big
            break
        head = [w1]
        for _ in range(n_layers - 2):
            head.append(max(1, round(head[-1] / 2)))
        if n_layers == 1:
            candidates = [head]
        else:
            candidates = [[*head, last] for last in range(max(1, head[-1] // 4), head[-1] + 1)]
        for widths in candidates:
            diff = abs(_stack_params(n_in, widths, n_classes) - target)
            key = (diff, abs(widths[-1] - widths[-2] / 2) if len(widths) > 1 else 0)
            if best is None or key < best[0]:
                best = (key, widths)
    if best is None:
        raise ValueError("no static widths fit the FC-D parameter count")
    return best[1]


def parameter_counts(n_in: int, n_layers: int = 3, n_classes: int = 1, n_bases: int = 4) -> dict:
    """The predictor's parameters: the FC-D stack (dynamic) and its static replacement, output layer
    included in both, with the widths of each."""
    dynamic_widths = halving_widths(n_in, n_layers)
    widths = static_widths(n_in, n_layers, n_classes, n_bases)
    return {
        "dynamic": _stack_params(n_in, dynamic_widths, n_classes, n_bases),
        "dynamic_widths": dynamic_widths,
        "static": _stack_params(n_in, widths, n_classes),
        "static_widths": widths,
    }


class DIGMN(nn.Module):
    """The full network. ``forward(seq, lengths, static, intent=None)``:

    - ``seq [B, T, n_behaviour + n_intents]``: per-session behaviour features, then (unless ``intent`` is
      given) the session's intent vector in the last ``n_intents`` channels, so that a dataset with the
      intents appended trains in the shared loop unchanged; padding beyond ``lengths`` is ignored;
    - ``intent [B, T, n_intents]``, optional: the intents separately (then ``seq`` holds behaviour only);
    - ``static [B, n_static]``: the macro features (the user's KPI aggregates), required.

    Returns logits ``[B]`` for ``n_classes == 1``, else ``[B, n_classes]``. Defaults are the paper's
    (hidden 32 for both LSTMs and the meta network, ``d = 4`` bases; ``n_layers`` was searched in 1..5).
    """

    def __init__(
        self,
        n_behaviour: int,
        n_intents: int,
        n_static: int,
        n_classes: int = 1,
        hidden_size: int = 32,
        intent_hidden: int = 32,
        meta_hidden: int = 32,
        n_bases: int = 4,
        n_layers: int = 3,
        dynamic: bool = True,
    ):
        super().__init__()
        self.n_behaviour, self.n_intents, self.n_classes, self.dynamic = n_behaviour, n_intents, n_classes, dynamic
        self.behaviour_lstm = nn.LSTM(n_behaviour, hidden_size, batch_first=True)
        self.intent_lstm = nn.LSTM(n_intents, intent_hidden, batch_first=True)
        n_in = hidden_size + intent_hidden + n_static
        if dynamic:
            widths = halving_widths(n_in, n_layers)
            self.meta = MetaNetwork(intent_hidden, n_bases, meta_hidden)
            def layer(m: int, n: int) -> FCD:
                return FCD(m, n, n_bases)
        else:
            widths = static_widths(n_in, n_layers, n_classes, n_bases)
            self.meta = None
            layer = nn.Linear
        self.widths = widths
        sizes = [n_in, *widths]
        self.layers = nn.ModuleList(layer(m, n) for m, n in pairwise(sizes))
        self.out = nn.Linear(widths[-1], n_classes)

    def encode(
        self, seq: torch.Tensor, lengths: torch.Tensor, intent: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The last valid states of the behaviour and intent LSTMs, ``[B, hidden]`` and ``[B, intent_hidden]``."""
        if intent is None:
            if seq.shape[-1] != self.n_behaviour + self.n_intents:
                raise ValueError(f"seq has {seq.shape[-1]} channels, expected {self.n_behaviour} behaviour "
                                 f"+ {self.n_intents} intent channels")
            seq, intent = seq[..., : self.n_behaviour], seq[..., self.n_behaviour :]
        # With a packed input, h_n is each sequence's state at its own last valid step, in batch order.
        _, (h_behaviour, _) = self.behaviour_lstm(pack_steps(seq, lengths))
        _, (h_intent, _) = self.intent_lstm(pack_steps(intent, lengths))
        return h_behaviour[-1], h_intent[-1]

    def mixing_weights(self, intent_state: torch.Tensor) -> torch.Tensor:
        """``a [B, n_bases]`` from the intent state (the dynamic model only)."""
        return self.meta(intent_state)

    def forward(
        self,
        seq: torch.Tensor,
        lengths: torch.Tensor,
        static: torch.Tensor | None = None,
        intent: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if static is None:
            raise ValueError("DIGMN needs the macro features (the static vector)")
        h_behaviour, h_intent = self.encode(seq, lengths, intent)
        h = torch.cat([h_behaviour, h_intent, static], dim=1)
        a = self.mixing_weights(h_intent) if self.dynamic else None
        for layer in self.layers:
            h = torch.relu(layer(h, a) if self.dynamic else layer(h))
        return squeeze_binary(self.out(h), self.n_classes)

    def regularization(self) -> torch.Tensor:
        """Eq. 9: the orthogonality penalties of the FC-D layers, summed (0 for the static model)."""
        penalties = [layer.orthogonality_penalty() for layer in self.layers if isinstance(layer, FCD)]
        return torch.stack(penalties).sum() if penalties else self.out.weight.new_zeros(())

    def basis_parameters(self) -> list[nn.Parameter]:
        """The FC-D basis weight matrices (not their biases): the parameters exempt from weight decay."""
        return [layer.weight for layer in self.layers if isinstance(layer, FCD)]

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        """Two optimizer parameter groups: the basis matrices without weight decay (the orthogonality
        penalty regularises them; the paper argues against combining both), everything else with it."""
        exempt = {id(p) for p in self.basis_parameters()}
        return [
            {"params": [p for p in self.parameters() if id(p) not in exempt], "weight_decay": weight_decay},
            {"params": [p for p in self.parameters() if id(p) in exempt], "weight_decay": 0.0},
        ]

    def predictor_parameters(self) -> int:
        """Parameters of the layers the ablation swaps: the hidden stack and the output layer."""
        return sum(p.numel() for m in (*self.layers, self.out) for p in m.parameters())


class StaticDIGMN(DIGMN):
    """The ablation: the same network with plain linear layers of the same parameter count in place of
    the FC-D layers, and no meta network. Same constructor, without ``dynamic``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs, dynamic=False)
