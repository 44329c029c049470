"""Cards (mlogs): what exists, who made it, when it is live, and how popular it is.

Sizes scale with the number of users from the full log (252,955 cards, 90,534 creators for 2,085,602 users), so
a card gets about as many impressions at any scale and the share of cards ever shown (211,066 of 252,955) holds.

A card is *live* on a contiguous run of days that starts after its publication day; only live cards are shown,
so ``mlog_stats`` (one row per live card-day, platform-wide counts) always covers the sampled impressions. Card
popularity is log-normal and fresh cards get a boost that fades over a few days; the feed picks cards with
probability proportional to popularity times freshness among the live cards of the requested type.

``publishTime`` counts days back from the day after the last day of the log (1 Dec 2019 for the real 30 days),
so publication dt = days + 1 - publishTime, and the first live day is one later; that satisfies both readings of
the real field (31 - p and 32 - p). A small campaign batch (videos with one topic and one category, published on
dt 6-7) reproduces the spike at publishTime 24-25 seen in the real head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn_dagster.domain.ncm_format import NO_SONG_SENTINEL, NO_TALK_SENTINEL

from . import ids

FULL_USERS = 2_085_602
FULL_CARDS = 252_955
FULL_CREATORS = 90_534
FULL_TOPICS = 9_817

CAMPAIGN_TALK_ID = 1_307_098
CAMPAIGN_CONTENT = "5001,5010,5054"
_LEVEL1 = (1000, 1001, 1002, 1003, 5000, 5001, 5002, 5003, 5004)


def scaled(full: int, users: int, minimum: int) -> int:
    """``full`` scaled to ``users`` users, never below ``minimum`` (tiny test sets still need a catalogue)."""
    return max(minimum, round(full * users / FULL_USERS))


@dataclass
class Catalog:
    """All cards plus a few orphan IDs (cards shown in the log but absent from ``mlog_demographics``)."""

    days: int
    card_ids: pa.LargeStringArray  # n_cards real cards, then the orphans
    n_cards: int
    card_type: np.ndarray  # 1 = image set + music, 2 = video
    creator: np.ndarray  # index into the creator table
    publish_time: np.ndarray
    live_first: np.ndarray  # first live dt (1-based)
    live_last: np.ndarray
    popularity: np.ndarray
    appeal: np.ndarray  # card effect on the click logit
    song_ids: pa.Array
    artist_ids: pa.Array
    content_ids: pa.Array
    talk_ids: np.ndarray
    samplers: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]

    @property
    def n_orphans(self) -> int:
        return len(self.card_ids) - self.n_cards

    def sample(self, dt: np.ndarray, video: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One card index per request: a live card of the wanted type, by popularity x freshness on that dt."""
        out = np.empty(len(dt), dtype=np.int32)
        for (day, kind), (cards, cum) in self.samplers.items():
            rows = np.flatnonzero((dt == day) & (video == (kind == 2)))
            if len(rows):
                out[rows] = cards[np.searchsorted(cum, rng.random(len(rows)) * cum[-1], side="right")]
        return out

    def mlog_demographics(self, creator_ids: pa.Array) -> pa.Table:
        """The card table (canonical column names); ``creator_ids`` holds one ID per creator index."""
        return pa.table(
            {
                "mlog_id": self.card_ids.slice(0, self.n_cards),
                "song_id": self.song_ids,
                "artist_id": self.artist_ids,
                "creator_id": creator_ids.take(pa.array(self.creator)),
                "publish_time": pa.array(self.publish_time, pa.int32()),
                "type": pa.array(self.card_type, pa.int8()),
                "content_id": self.content_ids,
                "talk_id": pa.array(self.talk_ids, pa.int64()),
            }
        )


def _zipf_weights(n: int, exponent: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** exponent
    return w / w.sum()


def _taxonomy(rng: np.random.Generator) -> np.ndarray:
    """122 three-level category paths ``l1,l2,l3`` (the documented count); the two real top paths come first."""
    paths = [CAMPAIGN_CONTENT, "5000,5006,5036"]
    level2 = iter(range(5005, 5100))
    level3 = iter(range(5101, 5400))
    while len(paths) < 122:
        first = _LEVEL1[len(paths) % len(_LEVEL1)]
        second = next(level2)
        for _ in range(int(rng.integers(3, 7))):
            paths.append(f"{first},{second},{next(level3)}")
    return np.array(paths[:122], dtype=object)


def _publish_times(n: int, days: int, campaign: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Days before the day after the log: about 38% inside the window (>= 2, campaign included), median near
    50, the oldest 217."""
    inside = rng.random(n) < 0.345
    recent = rng.integers(2, max(days, 2) + 1, n)
    old = np.minimum(days + 1 + np.floor(rng.exponential(70.0, n)), 217)
    p = np.where(inside, recent, old)
    if days >= 8:
        p[campaign] = days + 1 - rng.integers(6, 8, int(campaign.sum()))
    return p.astype(np.int32)


def _live_windows(publish_time: np.ndarray, days: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """First and last live dt; new cards start the day after publication, a third of old cards resurface later."""
    n = len(publish_time)
    published_dt = days + 1 - publish_time
    resurface = rng.integers(1, days + 1, n)
    first = np.where(published_dt >= 1, published_dt + 1, np.where(rng.random(n) < 0.65, 1, resurface))
    first = np.minimum(first, days)
    length = np.ceil(rng.exponential(47.0, n)).astype(np.int64)  # about 16.6 live days per card over 30
    last = np.minimum(first + length - 1, days)
    return first.astype(np.int16), last.astype(np.int16)


def _song_columns(card_type: np.ndarray, rng: np.random.Generator) -> tuple[pa.Array, pa.Array]:
    """Song and artist IDs; videos mostly carry the no-song sentinel, which never appears on type 1 cards."""
    n = len(card_type)
    n_songs, n_artists = max(20, int(0.55 * n)), max(10, int(0.12 * n))
    song_artist = rng.choice(n_artists, n_songs, p=_zipf_weights(n_artists, 0.8))
    song = rng.choice(n_songs, n, p=_zipf_weights(n_songs, 0.7))
    no_song = (card_type == 2) & (rng.random(n) < 0.79)
    song_ids = ids.make_ids(n_songs, ids.SONG_IDS, rng).take(pa.array(song))
    artist_ids = ids.make_ids(n_artists, ids.ARTIST_IDS, rng).take(pa.array(song_artist[song]))
    sentinel = pa.scalar(NO_SONG_SENTINEL, pa.large_string())
    mask = pa.array(no_song)
    return pc.if_else(mask, sentinel, song_ids), pc.if_else(mask, sentinel, artist_ids)


def _samplers(cat: Catalog) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """Cumulative weights of the live cards per (dt, type); an empty group falls back to all cards of that type."""
    out = {}
    for day in range(1, cat.days + 1):
        age = day - cat.live_first
        fresh = np.where(cat.publish_time <= cat.days, 1.0 + 3.0 * np.exp(-np.maximum(age, 0) / 4.0), 1.0)
        live = (age >= 0) & (day <= cat.live_last)
        for kind in (1, 2):
            cards = np.flatnonzero(live & (cat.card_type == kind))
            if len(cards) == 0:
                cards = np.flatnonzero(cat.card_type == kind)
            if len(cards) == 0:
                cards = np.arange(cat.n_cards)
            out[(day, kind)] = (cards.astype(np.int32), np.cumsum(cat.popularity[cards] * fresh[cards]))
    return out


def build_catalog(users: int, days: int, n_creators: int, rng: np.random.Generator) -> Catalog:
    """The card table for a log of ``users`` users over ``days`` days, with cards spread over ``n_creators``."""
    n = scaled(FULL_CARDS, users, minimum=40)
    n_orphans = max(1, n // 2000)
    campaign = rng.random(n) < 0.05
    card_type = np.where(campaign | (rng.random(n) < 0.44), 2, 1).astype(np.int8)
    publish_time = _publish_times(n, days, campaign, rng)
    live_first, live_last = _live_windows(publish_time, days, rng)
    # Every creator owns at least one card; production beyond that is concentrated in a few creators.
    creator_weight = rng.lognormal(0.0, 1.5, n_creators)
    creator = np.concatenate(
        [rng.permutation(n_creators), rng.choice(n_creators, n - n_creators, p=creator_weight / creator_weight.sum())]
    )[rng.permutation(n)]
    taxonomy = _taxonomy(np.random.default_rng(7))  # the same category tree in every data set
    content = taxonomy[rng.choice(len(taxonomy), n, p=_zipf_weights(len(taxonomy), 1.0))]
    content[rng.random(n) < 0.295] = ""
    content[campaign] = CAMPAIGN_CONTENT
    topics = rng.choice(np.arange(1000, 1_300_000), scaled(FULL_TOPICS, users, minimum=10), replace=False)
    talk = topics[rng.choice(len(topics), n, p=_zipf_weights(len(topics), 0.9))]
    talk[rng.random(n) < 0.195] = NO_TALK_SENTINEL
    talk[campaign] = CAMPAIGN_TALK_ID
    song_ids, artist_ids = _song_columns(card_type, rng)
    cat = Catalog(
        days=days,
        card_ids=ids.make_ids(n + n_orphans, ids.CARD_IDS, rng),
        n_cards=n,
        card_type=card_type,
        creator=creator.astype(np.int32),
        publish_time=publish_time,
        live_first=live_first,
        live_last=live_last,
        popularity=rng.lognormal(0.0, 2.3, n) * np.where(campaign, 3.0, 1.0),
        appeal=rng.normal(0.0, 0.4, n),
        song_ids=song_ids,
        artist_ids=artist_ids,
        content_ids=pa.array(content, pa.large_string()),
        talk_ids=talk.astype(np.int64),
        samplers={},
    )
    cat.samplers = _samplers(cat)
    return cat
