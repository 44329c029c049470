"""Event logs of other shapes than NCM, generated: a purchase log, a ratings log and a clickstream with
session ids written in two time zones. The tests and the event-log quick start use them; they show the
component on logs that carry amounts, ratings, item ids and sessions.

Each user has a signup day, a base rate of activity, a weekly habit or none, and a satisfaction that walks
from day to day with a drift of its own; the daily hazard of leaving falls with satisfaction, is lower
for users with a habit, and rises after a quiet spell (a week without activity). Purchase amounts and
ratings follow satisfaction. So what happens in the
label period depends on the order and spacing of earlier events (regularity, the latest quiet spell, the
direction of the drift), not only on their totals: the setting in which a sequence model has something to
add over recency, frequency and monetary value. Days are simulated for all users of a chunk at once
(NumPy, no loop over events); the same seed gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

SHAPES = ("purchases", "ratings", "clicks")
CHUNK_USERS = 20_000
CLICK_TYPES = ("view", "click", "cart", "purchase")
# The clickstream's two regions: (zone name, UTC offset in hours) in winter and in summer.
REGIONS = (("Europe/Berlin", 1, 2), ("America/New_York", -5, -4))


@dataclass(frozen=True)
class LogSpec:
    shape: str
    users: int = 5_000
    days: int = 120
    start: date = date(2024, 1, 1)
    seed: int = 0
    rate: float = 0.35  # the median user's events per day at signup (before habit and satisfaction)


@dataclass(frozen=True)
class Traits:
    """What a user brings and keeps: signup day, base rate, the drift of satisfaction, a weekly habit or none."""

    signup: np.ndarray
    base: np.ndarray
    drift: np.ndarray
    regular: np.ndarray
    habit_day: np.ndarray

    def take(self, index: np.ndarray) -> Traits:
        """The traits of the users at ``index`` (repeated indices give copies, for forward simulation)."""
        return Traits(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


@dataclass
class State:
    """What changes from day to day: satisfaction, days since the last event, whether the user has left."""

    level: np.ndarray
    quiet: np.ndarray
    gone: np.ndarray

    def take(self, index: np.ndarray) -> State:
        return State(self.level[index].copy(), self.quiet[index].copy(), self.gone[index].copy())


def draw_users(rng: np.random.Generator, n: int, days: int, rate: float) -> tuple[Traits, State]:
    """Each user's traits and their state before their first day."""
    traits = Traits(signup=rng.integers(0, days, n),
                    base=np.exp(rng.normal(np.log(0.35), 0.6, n)).clip(0.03, 3) * (rate / 0.35),
                    drift=rng.normal(-0.01, 0.03, n), regular=rng.random(n) < 0.5, habit_day=rng.integers(0, 7, n))
    return traits, State(level=rng.normal(0.0, 0.5, n), quiet=np.zeros(n, np.int64), gone=np.zeros(n, bool))


def step(rng: np.random.Generator, traits: Traits, state: State, day: int | np.ndarray) -> np.ndarray:
    """One day for every user (``day`` may differ per user): updates ``state`` and returns the day's events.

    Satisfaction is a random walk with a per-user drift: it raises the rate of activity, shows in the values
    (spend, ratings) and lowers the hazard of leaving, so a falling trajectory, visible in the latest values
    and the thinning of activity before the totals move, announces a departure. Regular users (a weekly
    habit day) leave less at the same totals, and a quiet spell of a week or more raises the hazard."""
    n = len(state.level)
    age = day - traits.signup
    alive = (age >= 0) & ~state.gone
    state.level = np.where(age > 0, state.level + traits.drift + rng.normal(0, 0.12, n), state.level)
    rate = traits.base * np.exp(0.5 * state.level)
    rate = np.where(traits.regular, np.where(day % 7 == traits.habit_day, rate * 4.5, rate * 0.4), rate)
    today = np.where(alive, rng.poisson(np.clip(rate, 0, 20)), 0)
    today = np.where(age == 0, np.maximum(today, 1), today)
    state.quiet = np.where(alive & (today > 0), 0, state.quiet + alive)
    hazard = np.where(traits.regular, 0.003, 0.015) * np.exp(-1.2 * state.level) * (1 + (state.quiet >= 7) * 3)
    state.gone = state.gone | (alive & (rng.random(n) < hazard))
    return today


def _activity(rng: np.random.Generator, n: int, days: int, rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events per user and day (0 before signup and after leaving), the signup day, and each user's
    satisfaction per day."""
    traits, state = draw_users(rng, n, days, rate)
    mood = np.zeros((n, days), np.float32)
    events = np.zeros((n, days), np.int64)
    for day in range(days):  # a loop over days (not events): the hazard depends on the path so far
        events[:, day] = step(rng, traits, state, day)
        mood[:, day] = state.level
    return events, traits.signup, mood


def purchase_means(rng: np.random.Generator, n: int, user: np.ndarray, feeling: np.ndarray) -> np.ndarray:
    """Each purchase's expected amount: the user's own mean (log-normal) moved by their satisfaction that day;
    the amount is a gamma draw (shape 4) around it."""
    return np.exp(rng.normal(3.3, 0.5, n))[user] * np.exp(0.6 * feeling)


def ratings(rng: np.random.Generator, n: int, user: np.ndarray, feeling: np.ndarray) -> np.ndarray:
    """Each rating: the user's taste plus their satisfaction that day plus noise of 0.8 stars, in half stars."""
    taste = rng.normal(3.6, 0.4, n)[user] + 1.0 * feeling
    return np.clip(np.round((taste + rng.normal(0, 0.8, len(user))) * 2) / 2, 0.5, 5.0)


def expand(events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(user index, day) of every event, in user then day order."""
    users, days = np.nonzero(events)
    counts = events[users, days]
    return np.repeat(users, counts), np.repeat(days, counts)


def _user_ids(prefix: str, chunk: int, n: int) -> np.ndarray:
    return np.char.add(prefix, np.char.zfill((chunk * CHUNK_USERS + np.arange(n)).astype(str), 7))


def _chunk(spec: LogSpec, chunk: int, n: int) -> pa.Table:
    rng = np.random.default_rng([spec.seed, chunk, SHAPES.index(spec.shape)])
    events, signup, mood = _activity(rng, n, spec.days, spec.rate)
    user, day = expand(events)
    m = len(user)
    seconds = np.clip(rng.normal(14 * 3600, 4 * 3600, m), 0, 86399).astype(np.int64)
    dates = np.datetime64(spec.start) + day.astype("timedelta64[D]")
    feeling = mood[user, day]
    if spec.shape == "purchases":
        mean = purchase_means(rng, n, user, feeling)
        amount = np.round(rng.gamma(4.0, mean / 4.0), 2)
        order = np.char.add("O", (chunk * 100_000_000 + np.arange(m)).astype(str))
        return pa.table({"order_id": order, "customer_id": _user_ids("C", chunk, n)[user],
                         "order_date": dates.astype(str), "amount": amount})
    if spec.shape == "ratings":
        rating = ratings(rng, n, user, feeling)
        item = np.minimum(rng.zipf(1.3, m), 50_000)
        epoch = (dates.astype("datetime64[s]").astype(np.int64) + seconds)
        return pa.table({"userId": (chunk * CHUNK_USERS + user + 1).astype(np.int64), "movieId": item,
                         "rating": rating, "timestamp": epoch})
    return _clicks(rng, chunk, n, user, dates, seconds)


def _clicks(rng, chunk: int, n: int, user, dates, seconds) -> pa.Table:
    """Each event of the day expands into a short session of views that may lead to clicks, carts and a
    purchase, seconds to minutes apart; its time is written with the offset of the user's region."""
    steps = rng.integers(1, 6, len(user))
    u, start = np.repeat(user, steps), np.repeat(seconds, steps)
    session = np.repeat(np.arange(len(user)), steps)
    within = np.cumsum(rng.exponential(45, len(u)).astype(np.int64))
    first = np.repeat(np.cumsum(steps) - steps, steps)
    offset_s = within - within[first] + start
    kind = np.minimum(rng.geometric(0.55, len(u)) - 1, 3)
    region = (chunk * CHUNK_USERS + u) % 2
    day = np.repeat(dates, steps)
    local = day.astype("datetime64[s]") + offset_s.astype("timedelta64[s]")
    summer = _summer(day)
    hours = np.where(region == 0, np.where(summer, 2, 1), np.where(summer, -4, -5))
    sign = np.where(hours < 0, "-", "+")
    text = np.char.add(np.char.add(np.char.replace(local.astype(str), "T", " "), sign),
                       np.char.add(np.char.zfill(np.abs(hours).astype(str), 2), ":00"))
    price = np.where(kind == 3, np.round(rng.gamma(2.0, 20.0, len(u)), 2), np.nan)
    return pa.table({
        "session": np.char.add("s", (chunk * 10_000_000 + session).astype(str)),
        "visitor": _user_ids("V", chunk, n)[u], "ts": text,
        "action": np.asarray(CLICK_TYPES)[kind], "sku": np.char.add("P", np.minimum(rng.zipf(1.4, len(u)), 9999).astype(str)),
        "price": pa.array(price, mask=np.isnan(price)),
    })


def _summer(days: np.ndarray) -> np.ndarray:
    """Whether a day is inside both regions' daylight-saving time (April to September: both are then)."""
    month = days.astype("datetime64[M]").astype(np.int64) % 12 + 1
    return (month >= 4) & (month <= 9)


def generate_log(spec: LogSpec, out: Path) -> int:
    """Write the log (CSV, one file) to ``out``; the number of events written."""
    if spec.shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}, got {spec.shape!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    rows = 0
    writer = None
    try:
        for chunk, lo in enumerate(range(0, spec.users, CHUNK_USERS)):
            table = _chunk(spec, chunk, min(CHUNK_USERS, spec.users - lo))
            rows += table.num_rows
            if out.suffix == ".parquet":
                writer = writer or pq.ParquetWriter(tmp, table.schema, compression="zstd")
                writer.write_table(table)
            else:
                options = pacsv.WriteOptions(include_header=writer is None, quoting_style="needed")
                with open(tmp, "ab" if writer else "wb") as f:
                    pacsv.write_csv(table, f, options)
                writer = writer or True
        if hasattr(writer, "close"):
            writer.close()
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return rows

