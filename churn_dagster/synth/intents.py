"""What users come for: latent intents that shape the event mix of a session and the direction of a user's trend.

The DIGMN paper (``../shared/seeds/digmn_wsdm2023.txt``) finds on LinkedIn that users come with different intents
(applying for jobs, building connections, checking notifications), that a session's events reveal its intent,
and that the intent mix tells whose engagement will rise or fall. On a music feed the analogous intents are
*listening* (long views, long quiet sessions, few reactions), *socialising* (comments read and written, likes,
shares) and *following creators* (visits to a creator's homepage). Each user holds a mix of the three (a
Dirichlet draw; most users lean to one), each session draws one intent from that mix, and the intent shifts
that session's action rates given a click, its view times, how often it pauses between cards and how many of
its cards are videos. The mix also
sets the user's course: socialisers are drawn in (their engagement rises), listeners drift away, and followers
of creators come in a burst after their first visit more often than the others (as the paper's job seekers do).

Action offsets are centred over the intents, so the population's action rates stay at the calibrated ones while
sessions differ. ``strength`` scales every effect at once; 0 switches the mechanism off (docs/SYNTHETIC.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INTENTS = ("listen", "social", "follow")
# Columns of IntentParams.actions, in this order.
ACTIONS = ("like", "view_comment", "homepage", "comment", "share")


@dataclass(frozen=True)
class IntentParams:
    """Effects per intent, in the order of :data:`INTENTS`."""

    strength: float = 1.0
    concentration: float = 0.5  # Dirichlet alpha of each intent: below 1, most users lean to one intent
    trend: tuple[float, ...] = (-0.05, 0.05, 0.0)  # drift of z per day per unit of intent weight
    # Logit offsets of the per-click action rates (columns: ACTIONS), centred over the intents in use.
    actions: tuple[tuple[float, ...], ...] = (
        (-0.3, -0.8, -0.6, -0.8, -0.3),  # listen
        (0.6, 1.2, -0.4, 1.6, 1.0),  # social
        (0.2, -0.2, 2.0, 0.0, 0.0),  # follow
    )
    view_time: tuple[float, ...] = (0.5, -0.25, -0.25)  # log-scale shift of a clicked card's view time
    pause: tuple[float, ...] = (0.16, 0.012, 0.016)  # share of a session's later gaps that are pauses
    depth: tuple[float, ...] = (-0.6, 0.3, 0.3)  # log mean of later batches per scroll (listeners scroll less)
    # Logit shift of the share of music videos among the session's cards: a listener plays image sets with
    # their music, a socialiser watches (and talks about) videos. It shows the intent in every session, also in
    # the four of five that open nothing.
    video: tuple[float, ...] = (-1.0, 0.8, 0.2)
    # Shift of the chance of a novelty burst after the first visit: who came for a creator's new release visits
    # often for a few days and then much less (the DIGMN paper's job seekers), a listener or socialiser rarely
    # bursts, so the same busy first week foretells a fall for one intent and not for another.
    burst: tuple[float, ...] = (-0.23, -0.23, 0.46)

    def action_offsets(self) -> np.ndarray:
        """(intents, actions) logit offsets, centred per action and scaled by ``strength``."""
        return self._centred(self.actions)

    def view_offsets(self) -> np.ndarray:
        return self._centred(self.view_time)

    def depth_offsets(self) -> np.ndarray:
        return self._centred(self.depth)

    def video_offsets(self) -> np.ndarray:
        return self._centred(self.video)

    def burst_offsets(self) -> np.ndarray:
        return self._centred(self.burst)

    def pause_shares(self) -> np.ndarray:
        """Per intent; with ``strength`` 0 every session pauses at the mean rate (the session tail stays)."""
        return np.asarray(self.pause, dtype=float).mean() + self._centred(self.pause)

    def _centred(self, values: tuple) -> np.ndarray:
        """``strength`` times each intent's difference from the intents' mean (per column of a table)."""
        table = np.asarray(values, dtype=float)
        return self.strength * (table - table.mean(axis=0))


def intent_mix(n: int, rng: np.random.Generator, p: IntentParams) -> np.ndarray:
    """(n, intents) float32 weights summing to one per user."""
    return rng.dirichlet(np.full(len(INTENTS), p.concentration), n).astype(np.float32)


def intent_drift(mix: np.ndarray, p: IntentParams) -> np.ndarray:
    """Per-user drift of z per day implied by the intent mix."""
    return p.strength * (mix @ np.asarray(p.trend, dtype=np.float32))


def burst_chance(mix: np.ndarray, base: float, p: IntentParams) -> np.ndarray:
    """Per-user chance of a novelty burst: the population's ``base`` moved by the user's intent mix."""
    return np.clip(base + mix.astype(np.float64) @ p.burst_offsets(), 0.0, 1.0)


def session_intents(mix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One intent index per row of ``mix`` (a session's user's mix), drawn from that mix."""
    cumulative = np.cumsum(mix, axis=1)
    draw = rng.random(len(mix))[:, None] * cumulative[:, -1:]
    return np.minimum((draw >= cumulative).sum(axis=1), len(INTENTS) - 1).astype(np.int8)
