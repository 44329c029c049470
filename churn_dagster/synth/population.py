"""Who the users are and on which days they open the feed.

Each simulated user carries a latent engagement ``z`` on the logit scale of "opens the feed today". It starts at a
personal level, drifts by a personal slope (a minority is *fading*; the user's intents add to it, see
:mod:`.intents`) and wanders as a random walk, so a user's first weeks say something about the third one,
through the level *and* through the trend. After the first visit a daily churn hazard, higher when ``z`` is low,
can end the user's activity for good, and about half of the users (most followers of creators, fewer of the
others, :func:`.intents.burst_chance`) get a short novelty burst of visits that fades within a week. Everything downstream (sessions, scroll depth, clicks) reads ``z`` of the day, which is what makes
the observation window predictive of the label week.

Three mechanisms make the *order and spacing* of activity carry what totals do not (docs/SYNTHETIC.md cites
their grounding):

- **Habits.** A habit strength ``h`` per user sets how strongly the user keeps a personal weekly rhythm (their
  own days of the week) and a preferred hour (:mod:`.sessions`); habitual users return at regular intervals and
  leave less often *at equal activity*: the hazard falls with ``h``, not with the count of visits.
- **Reaction to content.** Each day the feed serves content of a quality ``q[d]`` (standard normal) that shows in
  the day's scrolling and clicks (:mod:`.sessions`, :mod:`.behaviour`) and moves ``z`` of the following days,
  decaying geometrically: a good recent day brings the user back more than a good day two weeks ago.
- **Cold start.** A user's first days differ from the later ones (deeper scrolling, fewer clicks): the day's
  ``fresh`` weight decays from 1 on the first visit.

Most users of the real log are occasional: 59.6% are first seen after the first week and 61.5% of the first-week
cohort are absent in their label week. A two-part mixture gives that shape: a large casual group that opens the
feed about once a month and a small regular group that comes every few days. The log only contains users with at
least one impression, so candidates who never show up in the window are dropped; :func:`draw_users` keeps
drawing candidates until it has exactly the number asked for.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .intents import IntentParams, burst_chance, intent_drift, intent_mix


@dataclass(frozen=True)
class PopulationParams:
    """Latent-engagement model; calibrated on 200k users against ``ncm_data_facts.md`` §7 (see docs/SYNTHETIC.md)."""

    regular_share: float = 0.066  # share of candidates in the regular group
    casual_level: tuple[float, float] = (-3.95, 0.69)  # mean, sd of the starting logit (sigmoid(-3.95) = 1.9%)
    regular_level: tuple[float, float] = (-1.08, 0.7)  # same for regulars (sigmoid(-1.08) = 25% of days)
    # Per-day slope of z: a share of users is fading (the trend that precedes churn), the rest is stable.
    fading_share: float = 0.085
    fading_drift: tuple[float, float] = (-0.1, 0.04)  # mean, sd across fading users
    stable_drift_sd: float = 0.05
    walk_sd: float = 0.135  # day-to-day noise of z
    burst_share: float = 0.48  # users with a novelty burst after their first visit (moved by intents)
    burst_size: float = 2.0  # logit boost the day after the first visit
    burst_days: float = 5.5  # decay time of the boost
    hazard_intercept: float = -5.6  # daily churn hazard = sigmoid(intercept - slope * z - habit term)
    hazard_slope: float = 0.52
    # Added to the logit of opening the feed, Monday..Sunday: Saturday is the busiest day, Tuesday the quietest.
    weekday_logit: tuple[float, ...] = (-0.05, -0.12, -0.05, -0.03, 0.08, 0.2, 0.02)
    # Habits: strength h ~ Beta; the user's own weekly rhythm (logit amplitude at h = 1) and its hazard effect,
    # centred on the mean h so that the population's churn stays calibrated.
    habit_beta: tuple[float, float] = (1.2, 2.5)
    habit_rhythm: float = 2.0
    habit_hazard: float = 2.0
    # Reaction to content: z of later days moves by ``reaction`` per unit of a day's quality, decaying per day.
    reaction: float = 0.35
    reaction_decay: float = 0.6
    cold_start_days: float = 1.5  # decay time of the first days' difference; 0 switches it off
    intents: IntentParams = field(default_factory=IntentParams)
    # Per-user traits, all normal on a log or logit scale.
    session_sd: float = 0.1  # sessions per active day
    depth_sd: float = 0.78  # cards scrolled per session
    click_sd: float = 1.5  # click propensity
    action_sd: float = 0.6  # like/comment/share propensity given a click
    new_user_share: float = 0.056  # registered <= 1 month before the end of the log


@dataclass
class Users:
    """Appearing users of one chunk; rows are users, columns of the (n, days) arrays are days (0 = dt 1)."""

    z: np.ndarray  # float32 (n, days) latent engagement, the reaction to earlier days' content included
    active: np.ndarray  # bool (n, days) opens the feed that day
    quality: np.ndarray  # float32 (n, days) quality of the content the feed serves that day
    fresh: np.ndarray  # float32 (n, days) 1 on the first visit, decaying after it (0 before it)
    habit: np.ndarray  # float32 habit strength in [0, 1]
    intent: np.ndarray  # float32 (n, intents) the user's intent mix
    session_bias: np.ndarray
    depth_bias: np.ndarray
    click_bias: np.ndarray
    action_bias: np.ndarray
    video_share: np.ndarray  # probability that a shown card is a video
    tenure_months: np.ndarray  # int months registered before the day after the log

    @property
    def n(self) -> int:
        return len(self.z)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, elementwise: every probability of the generator is a logit turned by it."""
    return 1.0 / (1.0 + np.exp(-x))


def weekdays(days: int, first_weekday: int) -> np.ndarray:
    """Monday=0 .. Sunday=6 of each day, given that of dt 1."""
    return (first_weekday + np.arange(days)) % 7


def weekday_effect(day_weekdays: np.ndarray, params: PopulationParams) -> np.ndarray:
    """The population's weekday logit offset for each day."""
    return np.asarray(params.weekday_logit)[day_weekdays]


def tenure_months(n: int, rng: np.random.Generator, params: PopulationParams) -> np.ndarray:
    """Months since registration: 5.6% at 0-1 months, the rest spread with quartiles near 11/23/35, max 80."""
    new = rng.random(n) < params.new_user_share
    settled = np.clip(np.round(rng.gamma(2.2, 11.0, n)) + 2, 2, 80)
    return np.where(new, rng.integers(0, 2, n), settled).astype(np.int16)


def simulate(
    n: int,
    day_weekdays: np.ndarray,
    rng: np.random.Generator,
    p: PopulationParams = PopulationParams(),
    quality: np.ndarray | None = None,
) -> Users:
    """``n`` candidates, including those who never open the feed; ``quality`` (n, days) plants the content the
    feed serves each day instead of drawing it (the tests plant an order of good and bad days)."""
    days = len(day_weekdays)
    regular = rng.random(n) < p.regular_share
    level = np.where(regular, rng.normal(*p.regular_level, n), rng.normal(*p.casual_level, n))
    tenure = tenure_months(n, rng, p)
    # Long-registered users come back a little more often (returners' mean tenure 25.9 vs churners' 23.0).
    level += 0.006 * (tenure - 24)
    mix = intent_mix(n, rng, p.intents)
    fading = rng.random(n) < p.fading_share
    slope = np.where(fading, rng.normal(*p.fading_drift, n), rng.normal(0.0, p.stable_drift_sd, n))
    slope += intent_drift(mix, p.intents)
    habit = rng.beta(*p.habit_beta, n).astype(np.float32)
    rhythm = rng.normal(0.0, 1.0, (n, 7))
    rhythm = p.habit_rhythm * habit[:, None] * (rhythm - rhythm.mean(axis=1, keepdims=True))
    hazard_offset = p.hazard_intercept - p.habit_hazard * (habit - p.habit_beta[0] / sum(p.habit_beta))
    burst = np.where(rng.random(n) < burst_chance(mix, p.burst_share, p.intents), p.burst_size, 0.0)
    weekday = weekday_effect(day_weekdays, p)
    # Drawn even when planted, so that a planted population differs from a drawn one only in its content.
    drawn = rng.normal(0.0, 1.0, (n, days)).astype(np.float32)
    quality = drawn if quality is None else np.asarray(quality, dtype=np.float32)

    z = np.empty((n, days), dtype=np.float32)
    active = np.zeros((n, days), dtype=bool)
    fresh = np.zeros((n, days), dtype=np.float32)
    walk = np.zeros(n)
    carried = np.zeros(n)  # the reaction to earlier days' content
    first = np.full(n, -1)
    gone = np.zeros(n, dtype=bool)
    # One pass over days (vectorised over users): a day's visit depends on the earlier days' content and churn.
    for d in range(days):
        walk += rng.normal(0.0, p.walk_sd, n)
        z[:, d] = level + slope * d + walk + carried
        seen = first >= 0
        since_first = d - first
        # Novelty: after the first visit some users come back more often for a few days (it does not make them
        # scroll or click more). It fades, so activity packed into the first week foretells absence in the third.
        novelty = np.where(seen, burst * np.exp(-since_first / p.burst_days), 0.0)
        opens = rng.random(n) < sigmoid(z[:, d] + novelty + weekday[d] + rhythm[:, day_weekdays[d]])
        # The churn clock starts after the first visit, so early churners are not all first seen early.
        gone |= seen & (rng.random(n) < sigmoid(hazard_offset - p.hazard_slope * z[:, d]))
        active[:, d] = opens & ~gone
        first = np.where(~seen & active[:, d], d, first)
        if p.cold_start_days > 0:
            fresh[:, d] = np.where(first >= 0, np.exp(-(d - first) / p.cold_start_days), 0.0)
        carried = p.reaction_decay * carried + p.reaction * quality[:, d] * active[:, d]
    click_bias = rng.normal(0.0, p.click_sd, n) + np.where(tenure <= 6, 0.2, 0.0)
    return Users(
        z=z,
        active=active,
        quality=quality,
        fresh=fresh,
        habit=habit,
        intent=mix,
        session_bias=rng.normal(0.0, p.session_sd, n),
        depth_bias=rng.normal(0.0, p.depth_sd, n),
        click_bias=click_bias,
        action_bias=rng.normal(0.0, p.action_sd, n),
        video_share=rng.beta(4.0, 5.5, n),
        tenure_months=tenure,
    )


def _take(users: Users, rows: np.ndarray) -> Users:
    return Users(**{name: value[rows] for name, value in vars(users).items()})


def _concat(parts: list[Users]) -> Users:
    return Users(**{name: np.concatenate([vars(u)[name] for u in parts]) for name in vars(parts[0])})


def draw_users(
    n: int, day_weekdays: np.ndarray, rng: np.random.Generator, params: PopulationParams = PopulationParams()
) -> Users:
    """Exactly ``n`` users with at least one active day (``day_weekdays``: :func:`weekdays` of each day).

    Candidates are simulated in vectorised batches sized from the share that appeared in the previous one.
    """
    parts: list[Users] = []
    found = 0
    keep_rate = 0.5  # first guess of the share of candidates who appear; refined after each batch
    while found < n:
        candidates = int((n - found) / keep_rate * 1.05) + 64
        batch = simulate(candidates, day_weekdays, rng, params)
        seen = np.flatnonzero(batch.active.any(axis=1))
        keep_rate = max(len(seen) / candidates, 0.01)
        seen = seen[: n - found]
        parts.append(_take(batch, seen))
        found += len(seen)
    return parts[0] if len(parts) == 1 else _concat(parts)
