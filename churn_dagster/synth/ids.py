"""Obfuscated identifiers in the alphabet of the real files.

The published files replace every decimal digit of an ID by a two-character token (``G``..``P`` for 0..9,
each followed by ``C``), so ``GCHC`` is "01"; the grammar, 1 to 10 digits, is declared once in
:mod:`churn_dagster.domain.ncm_format` (``ID_GRAMMAR``), which the loader enforces and every class here must
fit. The real IDs also differ in length by entity (user IDs are mostly 9 or 10 digits, card IDs 7 or 6) and
some length classes keep leading zeros. :class:`IdSpec` records those classes; :func:`make_ids` draws one
unique ID per entity and returns them as an Arrow string array, so the writer can gather them for millions of
rows with ``pyarrow.compute.take`` instead of formatting strings in Python.

Uniqueness comes from a bijection rather than from rejection sampling: inside a length class the k-th entity
gets ``lo + (k * a + b) mod span`` with ``a`` coprime to ``span``, which never repeats and still looks random.
Different length classes give strings of different lengths, so they cannot collide either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from churn_dagster.domain import ncm_format as fmt

_DIGIT_BASE = ord(fmt.ID_DIGIT_LETTERS[0])  # G..P encode 0..9
_SEPARATOR = ord(fmt.ID_TOKEN_END)


@dataclass(frozen=True)
class IdClass:
    """IDs of ``digits`` decimal digits drawn from ``[lo, hi)``; ``lo = 0`` allows leading zeros."""

    digits: int
    share: float
    lo: int
    hi: int

    def __post_init__(self) -> None:
        if not 1 <= self.digits <= fmt.MAX_ID_DIGITS or self.hi > 10**self.digits:
            raise ValueError(f"{self} does not fit the published ID grammar (1 to {fmt.MAX_ID_DIGITS} digits)")

    @property
    def span(self) -> int:
        return self.hi - self.lo


@dataclass(frozen=True)
class IdSpec:
    """The length mix of one entity's IDs, read off the real heads (``ncm_data_facts.md`` §0)."""

    classes: tuple[IdClass, ...]


# userId: 20 chars 49%, 18 chars 47%, rare shorter ones; 8-digit IDs keep leading zeros.
USER_IDS = IdSpec(
    (
        IdClass(6, 0.001, 100_000, 1_000_000),
        IdClass(7, 0.002, 0, 10_000_000),
        IdClass(8, 0.039, 0, 100_000_000),
        IdClass(9, 0.469, 242_000_000, 1_000_000_000),
        IdClass(10, 0.489, 6_828_000_000, 9_800_000_000),
    )
)
# mlogId: 14 chars 91%, 12 chars (with leading zeros) 9%.
CARD_IDS = IdSpec((IdClass(6, 0.09, 0, 760_000), IdClass(7, 0.91, 4_280_000, 10_000_000)))
# creatorId: creators are users, so the same ranges, mostly 16-20 chars.
CREATOR_IDS = IdSpec(
    (
        IdClass(6, 0.002, 0, 1_000_000),
        IdClass(7, 0.005, 0, 10_000_000),
        IdClass(8, 0.064, 0, 100_000_000),
        IdClass(9, 0.520, 242_000_000, 1_000_000_000),
        IdClass(10, 0.409, 6_828_000_000, 9_800_000_000),
    )
)
SONG_IDS = IdSpec(
    (
        IdClass(5, 0.012, 0, 100_000),
        IdClass(6, 0.09, 0, 1_000_000),
        IdClass(7, 0.05, 4_000_000, 10_000_000),
        IdClass(8, 0.20, 48_000_000, 94_000_000),
        IdClass(9, 0.30, 0, 720_000_000),
        IdClass(10, 0.348, 9_480_000_000, 9_800_000_000),
    )
)
# artistId can be a single token ("OC" = 8) in the real data.
ARTIST_IDS = IdSpec(
    (
        IdClass(1, 0.0002, 0, 10),
        IdClass(4, 0.09, 0, 10_000),
        IdClass(5, 0.23, 0, 100_000),
        IdClass(6, 0.13, 0, 1_000_000),
        IdClass(7, 0.11, 9_680_000, 10_000_000),
        IdClass(8, 0.4398, 60_000_000, 100_000_000),
    )
)


def _class_sizes(n: int, spec: IdSpec, rng: np.random.Generator) -> np.ndarray:
    """Entities per class; a class too small for its draw (10 one-digit artists) spills into the largest."""
    shares = np.array([c.share for c in spec.classes])
    sizes = rng.multinomial(n, shares / shares.sum())
    spans = np.array([c.span for c in spec.classes])
    overflow = np.maximum(sizes - spans, 0)
    sizes -= overflow
    sizes[int(np.argmax(spans))] += int(overflow.sum())
    if np.any(sizes > spans):
        raise ValueError(f"{n} IDs do not fit the ID space {spec}")
    return sizes


def _coprime_step(span: int) -> int:
    """A multiplier near the golden ratio of ``span`` that is coprime to it, so k -> k*a mod span is a bijection."""
    a = max(1, int(span * 0.6180339887))
    while math.gcd(a, span) != 1:
        a += 1
    return a


def encode_tokens(numbers: np.ndarray, digits: np.ndarray) -> pa.StringArray:
    """Token strings for non-negative ``numbers`` written with ``digits`` decimal digits each (leading zeros kept)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    digits = np.asarray(digits, dtype=np.int64)
    lengths = 2 * digits
    offsets = np.zeros(len(numbers) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.empty(int(offsets[-1]), dtype=np.uint8)
    for width in np.unique(digits):
        rows = np.flatnonzero(digits == width)
        powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
        digit_matrix = (numbers[rows, None] // powers[None, :]) % 10
        tokens = np.empty((len(rows), 2 * width), dtype=np.uint8)
        tokens[:, 0::2] = _DIGIT_BASE + digit_matrix
        tokens[:, 1::2] = _SEPARATOR
        positions = offsets[rows, None] + np.arange(2 * width)[None, :]
        data[positions] = tokens
    return pa.Array.from_buffers(
        pa.large_string(), len(numbers), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def make_ids(n: int, spec: IdSpec, rng: np.random.Generator) -> pa.LargeStringArray:
    """``n`` distinct token IDs following ``spec``; entity k gets element k (length class assigned at random)."""
    sizes = _class_sizes(n, spec, rng)
    class_of = rng.permutation(np.repeat(np.arange(len(spec.classes)), sizes))
    numbers = np.empty(n, dtype=np.int64)
    digits = np.empty(n, dtype=np.int64)
    for k, cls in enumerate(spec.classes):
        members = np.flatnonzero(class_of == k)
        rank = np.arange(len(members), dtype=np.int64)
        offset = int(rng.integers(cls.span))
        numbers[members] = cls.lo + (rank * _coprime_step(cls.span) + offset) % cls.span
        digits[members] = cls.digits
    return encode_tokens(numbers, digits)
