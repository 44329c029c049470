"""The ``detailMlogInfoList`` field: the cards a user swiped through after opening one.

The real field is a Python literal, not JSON: a list of dicts with single-quoted keys and string values, in the
key order of ``ncm_format.DETAIL_LIST_KEYS``. Positions run from 2 upward (2..n+1, now and then with a repeat
or a gap), the list is usually not sorted by position, ``logtime`` grows with position from 7 s to about an hour
after the parent's request, and the parent card never appears in its own list. Inner view times are written as
Python writes floats (``'13.0'``, ``'1.44'``), unlike the top-level column (``13``).

All strings are assembled with Arrow kernels (element-wise joins, then one join per list), never row by row, as
large strings: a chunk of heavy users over a long calendar holds more than the 2 GiB of list text that 32-bit
offsets can address.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn_dagster.domain.ncm_format import DETAIL_LIST_KEYS

from .catalog import Catalog
from .sessions import rank_in_segment, segment_cumsum

# Inner flags per swiped card (real head: isViewComment 23%, isZan 7.4%, the others rare).
_FLAG_RATES = {
    "isZan": 0.074,
    "isComment": 0.002,
    "isIntoPersonalHomepage": 0.0035,
    "isShare": 0.001,
    "isViewComment": 0.23,
}
_SHORT_LENGTHS = np.array([1, 2, 3])
_SHORT_P = np.array([0.31, 0.14, 0.09])  # the rest is 4 + geometric, mean length about 8.6, at most 91
_LONG_EXTRA_MEAN = 12.7
_MAX_LENGTH = 91
_MAX_LOG_DELAY = 3675  # seconds after the parent request, the real maximum


def _lengths(n: int, rng: np.random.Generator) -> np.ndarray:
    short = rng.random(n)
    cut = np.cumsum(_SHORT_P)
    long = 4 + rng.geometric(1.0 / (1.0 + _LONG_EXTRA_MEAN), n) - 1
    length = np.where(short < cut[-1], _SHORT_LENGTHS[np.searchsorted(cut, short, side="right").clip(max=2)], long)
    return np.minimum(length, _MAX_LENGTH)


def _python_float_text(seconds: np.ndarray) -> pa.Array:
    """Float text as Python's repr writes it: always a decimal point (``13.0``)."""
    text = pc.cast(pa.array(seconds), pa.large_string())
    return pc.if_else(pc.match_substring(text, "."), text, pc.binary_join_element_wise(text, _large(".0"), _large("")))


def _large(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _as_text(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.large_string())


def build(
    parent_card: np.ndarray,
    parent_dt: np.ndarray,
    parent_time_s: np.ndarray,
    cat: Catalog,
    rng: np.random.Generator,
) -> pa.Array:
    """One list string per parent row (a clicked row that opened a swipe-down list)."""
    n = len(parent_card)
    length = _lengths(n, rng)
    entry_list = np.repeat(np.arange(n), length)
    rank = rank_in_segment(length)
    m = len(entry_list)

    # Positions 2..n+1; about 6% of lists skip one position, 2% repeat one.
    position = 2 + rank
    gap_at = np.repeat(np.where(rng.random(n) < 0.06, rng.integers(1, length + 1), _MAX_LENGTH + 1), length)
    position = position + (rank >= gap_at)
    repeat_at = np.repeat(np.where(rng.random(n) < 0.02, rng.integers(1, length + 1), _MAX_LENGTH + 1), length)
    position = position - (rank == repeat_at)

    card = cat.sample(parent_dt[entry_list], rng.random(m) < 0.42, rng)
    card = np.where(card == parent_card[entry_list], (card + 1) % cat.n_cards, card)
    view = np.round(rng.lognormal(np.log(14.6), 0.907, m) * 100.0) / 100.0
    # logtime grows with position: a first delay, then each card's view time plus a short pause.
    step = np.ceil(view) + np.round(rng.lognormal(np.log(8.0), 1.0, m))
    first_delay = np.clip(np.round(rng.lognormal(np.log(90.0), 1.1, n)), 7, 2400)
    offset = np.minimum(first_delay[entry_list] + segment_cumsum(step, length) - step, _MAX_LOG_DELAY)
    logtime_ms = (parent_time_s[entry_list] + offset) * 1000

    values = {key: _as_text((rng.random(m) < rate).astype(np.int8)) for key, rate in _FLAG_RATES.items()}
    values["mlogId"] = cat.card_ids.take(pa.array(card)).cast(pa.large_string())
    values["mlogViewTime"] = _python_float_text(view)
    values["position"] = _as_text(position)
    values["logtime"] = _as_text(logtime_ms.astype(np.int64))

    pieces: list = []
    for i, key in enumerate(DETAIL_LIST_KEYS):
        pieces += [_large(("{" if i == 0 else "', ") + f"'{key}': '"), values[key]]
    pieces.append(_large("'}"))
    entries = pc.binary_join_element_wise(*pieces, _large(""))

    # The real lists are mostly not in position order: shuffle the entries of each list.
    order = np.lexsort((rng.random(m), entry_list))
    offsets = np.concatenate([[0], np.cumsum(length)]).astype(np.int64)
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), entries.take(pa.array(order)))
    joined = pc.binary_join(lists, _large(", "))
    return pc.binary_join_element_wise(_large("["), joined, _large("]"), _large(""))
