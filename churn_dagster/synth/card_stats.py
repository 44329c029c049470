"""``mlog_stats``: one row per card and day on which the card was shown, with platform-wide counts.

The real counts are far larger than the sampled log (about 1.2 billion impressions against 57.75 million), so
they cover users outside the sample. Here each card-day count is the sampled count plus a platform-only part:
log-normal in the card's popularity (median card-day about 8 impressions, a long tail into the hundreds of
thousands), with clicks and actions drawn from it at the real pooled rates. A row exists for every live card-day
and for every card-day that has a sampled impression, so the sample never exceeds the platform count and the
minimum impression count is 1.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .behaviour import Impressions
from .catalog import Catalog

# Sampled outcomes accumulated per card-day, in this order.
_SAMPLED = ("impressions", "click", "like", "comment", "share", "view_comment", "homepage")
# Platform-only actions per platform click (real pooled ratios divided by the 5.5% card-day CTR).
_PER_CLICK = {"like": 0.043, "comment": 0.0027, "share": 0.0047, "view_comment": 0.158, "homepage": 0.011}
_FOLLOW_PER_CLICK = 0.0035
_PLATFORM_CTR = 0.055


class SampleCounts:
    """Card x day totals of the sampled impressions, added chunk by chunk (int32: bounded memory at full scale)."""

    def __init__(self, cat: Catalog):
        self.days = cat.days
        self.n_cards = cat.n_cards
        self.counts = np.zeros((len(_SAMPLED), cat.n_cards * cat.days), dtype=np.int32)

    def add(self, dt: np.ndarray, imp: Impressions) -> None:
        real = imp.card < self.n_cards  # orphan cards have no stats row
        key = imp.card[real].astype(np.int64) * self.days + (dt[real] - 1)
        size = self.counts.shape[1]
        self.counts[0] += np.bincount(key, minlength=size).astype(np.int32)
        for i, name in enumerate(_SAMPLED[1:], start=1):
            self.counts[i] += np.bincount(key, weights=getattr(imp, name)[real], minlength=size).astype(np.int32)


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def mlog_stats(cat: Catalog, sample: SampleCounts, rng: np.random.Generator) -> pa.Table:
    """The card-day table in shuffled row order."""
    days = cat.days
    card = np.repeat(np.arange(cat.n_cards), days)
    day = np.tile(np.arange(1, days + 1), cat.n_cards)
    live = (day >= cat.live_first[card]) & (day <= cat.live_last[card])
    rows = np.flatnonzero(live | (sample.counts[0] > 0))
    rows = rows[rng.permutation(len(rows))]
    card, day = card[rows], day[rows]
    sampled = {name: sample.counts[i, rows].astype(np.int64) for i, name in enumerate(_SAMPLED)}

    log_extra = np.log(5.0) + 0.75 * np.log(cat.popularity[card]) + rng.normal(0.0, 2.3, len(rows))
    extra = np.floor(np.exp(np.minimum(log_extra, np.log(370_000.0)))).astype(np.int64)
    extra = np.maximum(extra, 1 - sampled["impressions"])
    ctr = 1.0 / (1.0 + np.exp(-(_logit(_PLATFORM_CTR) + cat.appeal[card])))
    extra_clicks = rng.binomial(extra, ctr)
    clicks = sampled["click"] + extra_clicks

    def total(name: str) -> np.ndarray:
        return sampled[name] + rng.binomial(extra_clicks, _PER_CLICK[name])

    return pa.table(
        {
            "mlog_id": cat.card_ids.take(pa.array(card)),
            "dt": pa.array(day, pa.int16()),
            "user_impression_count": pa.array(sampled["impressions"] + extra),
            "user_click_count": pa.array(clicks),
            "user_like_count": pa.array(total("like")),
            "user_comment_count": pa.array(total("comment")),
            "user_share_count": pa.array(total("share")),
            "user_view_comment_count": pa.array(total("view_comment")),
            "user_into_homepage_count": pa.array(total("homepage")),
            "user_follow_creator_count": pa.array(rng.binomial(clicks, _FOLLOW_PER_CLICK)),
        }
    )
