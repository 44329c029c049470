"""From active days to impression rows: sessions, feed refreshes, batches, positions and timestamps.

The real ``impressTime`` is the time of a feed *request*: one request returns a batch of cards that share one
whole-second timestamp. A session opens the feed (a header batch, positions 1..4, about a quarter of the
time numbered from 0, sometimes in a two-column layout 1,1,2,2,..) and then loads one or two more cards at a
time as the user scrolls, continuing the numbering. A session may refresh the feed, which restarts the
numbering. Gaps between batches are seconds to minutes; sessions of a day start at independent times drawn from
the daily cycle, so they are usually hours apart (the pipeline splits sessions at 30-minute gaps).

Four things make sessions differ the way real ones do. A habitual user starts most sessions near a preferred
hour of their own. Each session draws an intent from the user's mix (:mod:`.intents`); a session pauses between
cards (a song or a video played to its end, comments read) at a rate set by that intent, and those pauses of
minutes give session length the heavy tail of the real log (Halfaker et al. 2015 find inter-activity times a
mixture of within-session seconds-to-minutes and between-session hours). A few sessions are immersed: deep
scrolling and frequent pauses together, so that long sessions are as dense in requests as the real head's, and
they are more frequent on a user's first days (``fresh``), when new users look around. What the day's feed
serves (``quality``) changes how deep they scroll.

Everything is expanded level by level with ``np.repeat``: user-days -> sessions -> scrolls -> batches -> rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churn_dagster.domain.ncm_format import SHANGHAI_UTC_OFFSET_SECONDS

from .intents import IntentParams, session_intents
from .population import Users, sigmoid

DAY_SECONDS = 86_400
# Share of sessions starting in each local hour 0..23: trough 02-05, lunch bump, evening peak at 22.
HOUR_WEIGHTS = np.array(
    [2.6, 1.5, 0.6, 0.35, 0.3, 0.45, 1.4, 3.2, 3.9, 4.3, 4.3, 4.6,
     5.9, 5.0, 4.6, 4.6, 4.7, 4.8, 6.0, 6.5, 7.0, 7.8, 8.9, 6.0]
)  # fmt: skip
# Header (first) batch of a scroll: sizes 1..5 numbered one per card, sizes 6..8 in the two-column layout.
HEADER_SIZES = np.array([1, 2, 3, 4, 5, 6, 7, 8])
HEADER_P = np.array([0.045, 0.03, 0.23, 0.50, 0.03, 0.035, 0.045, 0.085])
HEADER_TWO_COLUMN = HEADER_SIZES >= 6
# Later batches of a scroll: mostly one or two cards.
NEXT_SIZES = np.array([1, 2, 3, 4, 5, 6])
NEXT_P = np.array([0.46, 0.32, 0.12, 0.08, 0.015, 0.005])


@dataclass(frozen=True)
class SessionParams:
    """Rates log-linear in the day's pull ``q = sigmoid(z)``, the probability of opening the feed that day.

    Using ``q`` rather than ``z`` keeps intensity bounded: occasional users (q of a few percent) all get about
    one header batch, regulars several sessions of scrolling, and the user-level biases supply the heavy tail.
    Calibrated with the population (docs/SYNTHETIC.md).
    """

    sessions: tuple[float, float] = (-3.33, 4.82)  # extra sessions per active day ~ Poisson(exp(a + b q))
    refreshes: tuple[float, float] = (-4.25, 0.4)  # extra scrolls per session
    depth: tuple[float, float] = (-2.5, 4.04)  # later batches per scroll ~ geometric, log mean a + b q
    max_sessions: int = 19  # the reference maximum per day
    max_refreshes: int = 8
    max_depth: int = 150
    zero_start_share: float = 0.27
    header_short: float = 0.4  # chance, times (1 - pull), that a header is one card shorter
    skip_share: float = 0.1  # a later batch skips one position
    batch_gap: tuple[float, float] = (np.log(2.5), 1.6)  # seconds, log-normal
    refresh_gap: tuple[float, float] = (np.log(40.0), 1.2)
    max_gap: int = 1780  # keeps a session together under the 30-minute rule
    pause_gap: tuple[float, float] = (np.log(200.0), 1.3)  # a pause between cards (a song), seconds, log-normal
    pause_early: float = 2.0  # a pause's odds at a session's first gap, relative to the intent's share
    pause_early_batches: float = 6.0  # decay of those odds with the batch's rank in the session
    preferred_hour_share: float = 0.8  # share of sessions at the user's preferred hour, at habit strength 1
    preferred_hour_sd: float = 1.2  # hours around it
    depth_quality: float = 0.25  # log mean of later batches per unit of the day's content quality
    # A few sessions are immersed, whatever the user's pull: the user scrolls far deeper and plays card after
    # card, so a long session is long because it is full of browsing (the head's sessions of 30+ minutes hold
    # 30 requests on average). New users explore: on a first visit one session in eight is immersed.
    immersion_logit: float = -5.0  # log odds that a session is immersed (0.7%)
    immersion_first_visit: float = -2.0  # the same on a first visit, moving back as ``fresh`` decays (cold start)
    depth_immersion: float = 3.0  # added to the log mean of later batches per scroll
    pause_immersion: float = 2.0  # added to the log of the pause share of the session's later gaps


@dataclass
class Rows:
    """Impression rows of one chunk in generation order (grouped by user, then session)."""

    user: np.ndarray  # int32 index into the chunk's users
    dt: np.ndarray  # int16, 1-based, the Asia/Shanghai day of ``time_s``
    time_s: np.ndarray  # int64 Unix seconds of the feed request
    position: np.ndarray  # int32
    z: np.ndarray  # float32 engagement of the user on the session's day
    quality: np.ndarray  # float32 quality of the content the feed serves that day
    fresh: np.ndarray  # float32 1 on the user's first day, decaying after it
    intent: np.ndarray  # int8 the session's intent (index into intents.INTENTS)

    def subset(self, keep: np.ndarray) -> Rows:
        return Rows(**{name: value[keep] for name, value in vars(self).items()})


def _segment_starts(lengths: np.ndarray) -> np.ndarray:
    return np.cumsum(lengths) - lengths


def rank_in_segment(lengths: np.ndarray) -> np.ndarray:
    """0, 1, .. inside each consecutive segment of the given lengths."""
    return np.arange(int(lengths.sum())) - np.repeat(_segment_starts(lengths), lengths)


def segment_cumsum(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Inclusive running sum that restarts at every segment (segments are consecutive and non-empty)."""
    total = np.cumsum(values)
    starts = _segment_starts(lengths)
    return total - np.repeat(total[starts] - values[starts], lengths)


def _gaps(n: int, lognormal: tuple[float, float], cap: int, rng: np.random.Generator) -> np.ndarray:
    return np.clip(np.round(rng.lognormal(*lognormal, n)), 1, cap).astype(np.int64)


def first_local_midnight(epoch_day: int) -> int:
    """Unix seconds of 00:00 Asia/Shanghai on dt 1, given the start date as days since 1970-01-01."""
    return epoch_day * DAY_SECONDS - SHANGHAI_UTC_OFFSET_SECONDS


def _start_hours(users: Users, s_user: np.ndarray, rng: np.random.Generator, p: SessionParams) -> np.ndarray:
    """Local start hour of each session: near the user's preferred hour (habitual users) or from the daily cycle."""
    cycle = np.cumsum(HOUR_WEIGHTS) / HOUR_WEIGHTS.sum()
    preferred = np.searchsorted(cycle, rng.random(users.n), side="right")
    hour = np.searchsorted(cycle, rng.random(len(s_user)), side="right")
    at_habit = rng.random(len(s_user)) < p.preferred_hour_share * users.habit[s_user]
    near = np.round(preferred[s_user] + rng.normal(0.0, p.preferred_hour_sd, len(s_user))).astype(np.int64) % 24
    return np.where(at_habit, near, hour)


def expand(
    users: Users,
    midnight: int,
    weekday: np.ndarray,
    rng: np.random.Generator,
    p: SessionParams = SessionParams(),
    intents: IntentParams = IntentParams(),
) -> Rows:
    """Impression rows for every active user-day; ``weekday`` is the per-day weekday logit of the population."""
    days = users.active.shape[1]
    ud_user, ud_day = np.nonzero(users.active)
    ud_z = users.z[ud_user, ud_day]
    ud_pull = sigmoid(ud_z)
    ud_quality = users.quality[ud_user, ud_day]
    ud_fresh = users.fresh[ud_user, ud_day]

    rate = np.exp(p.sessions[0] + p.sessions[1] * ud_pull + users.session_bias[ud_user] + 0.5 * weekday[ud_day])
    n_sessions = np.minimum(1 + rng.poisson(rate), p.max_sessions)
    s_ud = np.repeat(np.arange(len(ud_user)), n_sessions)
    hour = _start_hours(users, ud_user[s_ud], rng, p)
    s_intent = session_intents(users.intent[ud_user[s_ud]], rng)
    s_start = midnight + ud_day[s_ud].astype(np.int64) * DAY_SECONDS + hour * 3600 + rng.integers(0, 3600, len(s_ud))
    s_pull = ud_pull[s_ud]
    immersed_logit = p.immersion_logit + ud_fresh[s_ud] * (p.immersion_first_visit - p.immersion_logit)
    s_immersion = (rng.random(len(s_ud)) < sigmoid(immersed_logit)).astype(np.float64)  # 1 or 0

    n_scrolls = np.minimum(1 + rng.poisson(np.exp(p.refreshes[0] + p.refreshes[1] * s_pull)), p.max_refreshes)
    c_session = np.repeat(np.arange(len(s_ud)), n_scrolls)
    c_rank = rank_in_segment(n_scrolls)
    c_ud = s_ud[c_session]
    depth_mean = np.exp(
        p.depth[0] + p.depth[1] * s_pull[c_session] + users.depth_bias[ud_user[c_ud]]
        + p.depth_quality * ud_quality[c_ud] + intents.depth_offsets()[s_intent[c_session]]
        + p.depth_immersion * s_immersion[c_session]
    )
    n_batches = 1 + np.minimum(rng.geometric(1.0 / (1.0 + depth_mean)) - 1, p.max_depth)

    b_scroll = np.repeat(np.arange(len(c_session)), n_batches)
    header = rank_in_segment(n_batches) == 0
    n_b = len(b_scroll)
    header_kind = rng.choice(len(HEADER_SIZES), n_b, p=HEADER_P)
    # A casual user's first screen is often a card shorter (single-column sizes from 2 only).
    shorter = rng.random(n_b) < p.header_short * (1.0 - s_pull[c_session[b_scroll]])
    header_kind = header_kind - (shorter & (HEADER_SIZES[header_kind] >= 2) & ~HEADER_TWO_COLUMN[header_kind])
    size = np.where(header, HEADER_SIZES[header_kind], rng.choice(NEXT_SIZES, n_b, p=NEXT_P))
    two_column = header & HEADER_TWO_COLUMN[header_kind]
    start = (rng.random(len(c_session)) >= p.zero_start_share).astype(np.int64)[b_scroll]
    header_span = np.where(two_column, (size + 1) // 2, size)
    skip = (rng.random(n_b) < p.skip_share).astype(np.int64)
    advance = np.where(header, start + header_span, size + skip)
    first_position = np.where(header, start, segment_cumsum(advance, n_batches) - size)

    # Timestamps: a batch follows the previous one of its session by a short gap, a refresh by a longer one.
    b_session = c_session[b_scroll]
    opens_session = header & (c_rank[b_scroll] == 0)
    batches_per_session = np.bincount(b_session, minlength=len(s_ud))
    # A pause comes early in a session (the first cards played through), and the user then scrolls on.
    b_rank = rank_in_segment(batches_per_session)
    early = p.pause_early * np.exp(-b_rank / p.pause_early_batches)
    pause_share = intents.pause_shares()[s_intent[b_session]] * np.exp(p.pause_immersion * s_immersion[b_session])
    pause = rng.random(n_b) < pause_share * early
    gap = np.where(
        header, _gaps(n_b, p.refresh_gap, p.max_gap, rng), _gaps(n_b, p.batch_gap, p.max_gap, rng)
    )
    gap = np.where(pause & ~header, _gaps(n_b, p.pause_gap, p.max_gap, rng), gap)
    gap[opens_session] = 0
    b_time = s_start[b_session] + segment_cumsum(gap, batches_per_session)

    r_batch = np.repeat(np.arange(n_b), size)
    r_rank = rank_in_segment(size)
    position = first_position[r_batch] + np.where(two_column[r_batch], r_rank // 2, r_rank)
    time_s = b_time[r_batch]
    dt = (time_s - midnight) // DAY_SECONDS + 1
    keep = dt <= days  # a session running past midnight of the last day is cut there
    r_session = b_session[r_batch[keep]]
    r_ud = s_ud[r_session]
    return Rows(
        user=ud_user[r_ud].astype(np.int32),
        dt=dt[keep].astype(np.int16),
        time_s=time_s[keep],
        position=position[keep].astype(np.int32),
        z=ud_z[r_ud].astype(np.float32),
        quality=ud_quality[r_ud].astype(np.float32),
        fresh=ud_fresh[r_ud].astype(np.float32),
        intent=s_intent[r_session],
    )
