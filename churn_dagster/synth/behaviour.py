"""What happens to each shown card: which card it is, whether it is clicked, what follows the click.

The click logit adds a per-user propensity (most users almost never click: three quarters of the real users
have no click in the month), the day's engagement ``z`` (engaged users click more, so pooled CTR is about twice
the mean per-user CTR), the depth in the feed (per-row CTR rises with position), and the card's appeal. Likes,
comments, shares, comment views and homepage visits only ever follow a click, at the real per-click rates times a
per-user propensity, shifted by the session's intent (:mod:`.intents`). The day's content quality raises clicks
and view times, and a user's first days click less (they look around). View times are log-normal (median 13 s,
p90 about 59 s), sometimes missing or zero even on a click. About 29% of clicked rows also carry a swipe-down
list (built in :mod:`.details`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .catalog import Catalog
from .intents import ACTIONS, IntentParams
from .population import Users, sigmoid
from .sessions import Rows


@dataclass(frozen=True)
class ActionParams:
    """Click and action model (docs/SYNTHETIC.md has the calibration).

    The per-click action rates are those of a user and session without tilt; with the per-user propensity
    (``action_sd``) and the sessions' intents (:mod:`.intents`) their means come out at the real head's rates
    given a click: view comments 20%, like 8%, homepage 1.3%, comment 0.6%, share 0.2%.
    """

    click_intercept: float = -4.6
    click_engagement: float = 0.25  # per unit of the day's z
    click_position: float = 0.35  # per unit of log(1 + position)
    click_quality: float = 0.35  # per unit of the day's content quality
    click_fresh: float = -0.25  # on the user's first day, decaying after it
    view_quality: float = 0.15  # log view time per unit of the day's content quality
    like: float = 0.058
    view_comment: float = 0.125
    homepage: float = 0.0055
    comment: float = 0.0022
    share: float = 0.0011
    view_time: tuple[float, float] = (np.log(13.0), 1.18)  # seconds, log-normal
    max_view_time: float = 650.0
    view_zero: float = 0.007  # clicked rows with a view time of exactly 0
    view_missing: float = 0.028  # clicked rows with NA view time
    view_float_artefact: float = 0.022  # clicked rows printed with a float artefact (12.340000000000002)
    view_without_click: float = 1e-4  # the real head has one view time on a non-clicked row
    detail: float = 0.29  # clicked rows with a swipe-down list
    detail_empty: float = 0.007  # of those, the literal []
    orphan: float = 3e-4  # rows whose card is missing from mlog_demographics
    redraws: int = 8  # attempts to replace a card repeated within one feed request


@dataclass
class Impressions:
    """Per-row outcomes, aligned with :class:`~.sessions.Rows`."""

    card: np.ndarray  # int32 index into ``Catalog.card_ids`` (orphans after the real cards)
    click: np.ndarray  # bool
    like: np.ndarray
    comment: np.ndarray
    share: np.ndarray
    view_comment: np.ndarray
    homepage: np.ndarray
    view_time: np.ndarray  # float64 seconds, NaN = NA
    detail: np.ndarray  # bool: a non-empty swipe-down list follows
    detail_empty: np.ndarray  # bool: the literal []


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _request_ids(rows: Rows) -> np.ndarray:
    """A number per feed request (same user and second), shared by the request's rows."""
    order = np.lexsort((rows.time_s, rows.user))
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (rows.user[order][1:] != rows.user[order][:-1]) | (rows.time_s[order][1:] != rows.time_s[order][:-1])
    ids = np.empty(len(order), dtype=np.int64)
    ids[order] = np.cumsum(starts) - 1
    return ids


def _repeated_in_request(request: np.ndarray, card: np.ndarray) -> np.ndarray:
    """Rows whose card already appears earlier in the same feed request."""
    order = np.lexsort((card, request))
    same = np.zeros(len(card), dtype=bool)
    same[1:] = (request[order][1:] == request[order][:-1]) & (card[order][1:] == card[order][:-1])
    repeated = np.zeros(len(card), dtype=bool)
    repeated[order] = same
    return repeated


def video_probability(share: np.ndarray, intent: np.ndarray, intents: IntentParams) -> np.ndarray:
    """The probability that a row shows a video: the user's share, its logit moved by the session's intent
    (exactly the share when the intents are off)."""
    offsets = intents.video_offsets()
    if not offsets.any():
        return share
    return 1 / (1 + np.exp(-(np.log(share / (1 - share)) + offsets[intent])))


def choose_cards(
    rows: Rows, users: Users, cat: Catalog, rng: np.random.Generator, p: ActionParams = ActionParams(),
    intents: IntentParams = IntentParams(),
) -> tuple[np.ndarray, np.ndarray]:
    """Card per row and a mask of the rows to keep.

    The user's taste for videos, shifted by the session's intent, picks the type, the catalogue picks a live
    card of that type. One feed request never shows a card twice (the real file has no repeated user, time and
    card), so repeats are redrawn a few times; the rare repeat left after that (tiny catalogues) is dropped.
    """
    video = rng.random(len(rows.user)) < video_probability(users.video_share[rows.user], rows.intent, intents)
    card = cat.sample(rows.dt, video, rng)
    orphans = np.flatnonzero(rng.random(len(card)) < p.orphan)
    card[orphans] = cat.n_cards + rng.integers(0, cat.n_orphans, len(orphans))
    request = _request_ids(rows)
    repeated = _repeated_in_request(request, card)
    for _ in range(p.redraws):
        if not repeated.any():
            break
        again = np.flatnonzero(repeated)
        card[again] = cat.sample(rows.dt[again], video[again], rng)
        # Only the requests that held a repeat can hold one now.
        affected = np.flatnonzero(np.isin(request, request[again]))
        repeated[affected] = _repeated_in_request(request[affected], card[affected])
    return card, ~repeated


def view_times(n: int, p: ActionParams, rng: np.random.Generator, stretch: np.ndarray | float = 1.0) -> np.ndarray:
    """Clicked-row view times: two decimals, some zeros, some missing, a few with a float artefact.

    ``stretch`` multiplies each draw before the cap (the session's intent and the day's content).
    """
    seconds = np.minimum(rng.lognormal(*p.view_time, n) * stretch, p.max_view_time)
    cents = np.round(seconds * 100.0)
    cents[rng.random(n) < p.view_zero] = 0.0
    values = cents / 100.0
    artefact = (rng.random(n) < p.view_float_artefact) & (cents > 0)
    values[artefact] = np.nextafter(values[artefact], np.inf)
    values[rng.random(n) < p.view_missing] = np.nan
    return values


def act(
    rows: Rows,
    card: np.ndarray,
    users: Users,
    cat: Catalog,
    rng: np.random.Generator,
    p: ActionParams = ActionParams(),
    intents: IntentParams = IntentParams(),
) -> Impressions:
    """Outcomes for every row of a chunk, given the cards shown (:func:`choose_cards`)."""
    n = len(rows.user)
    appeal = np.zeros(n)
    real = card < cat.n_cards
    appeal[real] = cat.appeal[card[real]]
    logit = (
        p.click_intercept
        + users.click_bias[rows.user]
        + p.click_engagement * rows.z
        + p.click_position * np.log1p(rows.position)
        + appeal
        + p.click_quality * rows.quality
        + p.click_fresh * rows.fresh
    )
    click = rng.random(n) < sigmoid(logit)
    action_bias = users.action_bias[rows.user]
    offsets = intents.action_offsets()[rows.intent]

    def after_click(action: str) -> np.ndarray:
        shift = action_bias + offsets[:, ACTIONS.index(action)]
        return click & (rng.random(n) < sigmoid(_logit(getattr(p, action)) + shift))

    view_time = np.full(n, np.nan)
    clicked = np.flatnonzero(click)
    stretch = np.exp(intents.view_offsets()[rows.intent[clicked]] + p.view_quality * rows.quality[clicked])
    view_time[clicked] = view_times(len(clicked), p, rng, stretch)
    stray = np.flatnonzero(~click & (rng.random(n) < p.view_without_click))
    view_time[stray] = view_times(len(stray), p, rng)
    detail = click & (rng.random(n) < p.detail)
    detail_empty = detail & (rng.random(n) < p.detail_empty)
    return Impressions(
        card=card,
        click=click,
        like=after_click("like"),
        comment=after_click("comment"),
        share=after_click("share"),
        view_comment=after_click("view_comment"),
        homepage=after_click("homepage"),
        view_time=view_time,
        detail=detail & ~detail_empty,
        detail_empty=detail_empty,
    )
