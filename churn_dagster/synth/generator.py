"""Orchestration: build the catalogue, simulate users chunk by chunk, write the six files.

Users are simulated in chunks of :data:`CHUNK_USERS`, so memory stays bounded at any scale: a chunk's rows are
written (and its card-day counts added to a fixed-size accumulator) before the next chunk starts. Every random
stream is derived from ``seed`` and a fixed label (catalogue, creators, IDs, chunk number, tables), and the
chunk size is a constant, so the same arguments always give byte-identical files.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn_dagster.domain import ncm_format as fmt

from . import (
    behaviour,
    card_stats,
    catalog,
    creators,
    demographics,
    details,
    ids,
    population,
    sessions,
    writer,
)
from .mechanisms import TwinParams

CHUNK_USERS = 50_000
_EPOCH = _dt.date(1970, 1, 1)


@dataclass(frozen=True)
class GenerationSummary:
    """What :func:`generate` wrote: one path and one data-row count per file stem."""

    out_dir: Path
    paths: dict[str, Path]
    rows: dict[str, int]


def _stream(seed: int, *label: int) -> np.random.Generator:
    return np.random.default_rng([seed, *label])


def _flag(values: np.ndarray, order: np.ndarray) -> pa.Array:
    return pa.array(values[order].astype(np.int8))


def impression_table(
    rows: sessions.Rows,
    imp: behaviour.Impressions,
    user_ids: pa.Array,
    cat: catalog.Catalog,
    rng: np.random.Generator,
) -> pa.Table:
    """The chunk's impression rows, grouped by user but in random order within each user, as in the real file."""
    n = len(rows.user)
    order = np.lexsort((rng.random(n), rows.user))
    # Row -> index into [lists..., "[]"], or -1 for NA.
    parents = np.flatnonzero(imp.detail)
    lists = details.build(imp.card[parents], rows.dt[parents], rows.time_s[parents], cat, rng)
    choice = np.full(n, -1, dtype=np.int64)
    choice[parents] = np.arange(len(parents))
    choice[imp.detail_empty] = len(parents)
    choice = choice[order]
    texts = pa.concat_arrays([lists.cast(pa.large_string()), pa.array(["[]"], pa.large_string())])
    return pa.table(
        {
            "detail_list": texts.take(pa.array(choice, mask=choice < 0)),
            "dt": pa.array(rows.dt[order]),
            "impress_position": pa.array(rows.position[order]),
            "impress_time_ms": pa.array(rows.time_s[order] * 1000),
            "is_click": _flag(imp.click, order),
            "is_comment": _flag(imp.comment, order),
            "is_into_homepage": _flag(imp.homepage, order),
            "is_share": _flag(imp.share, order),
            "is_view_comment": _flag(imp.view_comment, order),
            "is_like": _flag(imp.like, order),
            "mlog_id": cat.card_ids.take(pa.array(imp.card[order])),
            # Arrow prints floats as R did: 13 not 13.0, and the shortest repr otherwise (12.340000000000002).
            "mlog_view_time": pc.cast(pa.array(imp.view_time[order], from_pandas=True), pa.string()),
            "user_id": user_ids.take(pa.array(rows.user[order])),
        }
    )


def generate(
    out_dir: str | Path,
    *,
    users: int,
    days: int = 30,
    start_date: _dt.date = _dt.date(2019, 11, 1),
    seed: int = 0,
    compress: bool = False,
    params: TwinParams | None = None,
) -> GenerationSummary:
    """Write the six NCM files for ``users`` users (all with at least one impression) over ``days`` days.

    dt 1 is ``start_date`` in Asia/Shanghai. Catalogue sizes scale with ``users`` from the full log. Files are
    ``<stem>.csv`` (``.csv.gz`` with ``compress``), each replaced atomically when complete. ``params`` (the
    defaults when None) is the behaviour, e.g. :func:`mechanisms.without` some mechanism.
    """
    if users < 1 or days < 1:
        raise ValueError(f"users and days must be positive, got users={users}, days={days}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_creators = catalog.scaled(catalog.FULL_CREATORS, users, minimum=10)
    cat = catalog.build_catalog(users, days, n_creators, _stream(seed, 0))
    creator_ids = creators.creator_ids(n_creators, _stream(seed, 1))
    user_ids = ids.make_ids(users, ids.USER_IDS, _stream(seed, 2))
    midnight = sessions.first_local_midnight((start_date - _EPOCH).days)
    params = params or TwinParams()
    day_weekdays = population.weekdays(days, start_date.weekday())
    weekday = population.weekday_effect(day_weekdays, params.population)
    counts = card_stats.SampleCounts(cat)
    rows: dict[str, int] = {}

    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    try:
        with (
            writer.CsvFileWriter(con, out, fmt.IMPRESSIONS, compress) as impressions,
            writer.CsvFileWriter(con, out, fmt.USER_DEMOGRAPHICS, compress) as profiles,
        ):
            for chunk, first in enumerate(range(0, users, CHUNK_USERS)):
                rng = _stream(seed, 3, chunk)
                size = min(CHUNK_USERS, users - first)
                people = population.draw_users(size, day_weekdays, rng, params.population)
                chunk_ids = user_ids.slice(first, size)
                intents = params.population.intents
                shown = sessions.expand(people, midnight, weekday, rng, params.sessions, intents)
                card, keep = behaviour.choose_cards(shown, people, cat, rng, params.actions, intents)
                shown = shown.subset(keep)
                outcome = behaviour.act(shown, card[keep], people, cat, rng, params.actions, intents)
                counts.add(shown.dt, outcome)
                impressions.write(impression_table(shown, outcome, chunk_ids, cat, rng))
                profiles.write(demographics.user_demographics(people, chunk_ids, rng))
        rows[fmt.IMPRESSIONS.stem] = impressions.rows
        rows[fmt.USER_DEMOGRAPHICS.stem] = profiles.rows
        # Built one at a time, after the chunk loop (mlog_stats needs every chunk's counts).
        builders = (
            (fmt.MLOG_DEMOGRAPHICS, lambda: cat.mlog_demographics(creator_ids)),
            (fmt.MLOG_STATS, lambda: card_stats.mlog_stats(cat, counts, _stream(seed, 4))),
            (fmt.CREATOR_DEMOGRAPHICS, lambda: creators.creator_demographics(creator_ids, _stream(seed, 5))),
            (fmt.CREATOR_STATS, lambda: creators.creator_stats(cat, creator_ids, _stream(seed, 6))),
        )
        for f, build in builders:
            rows[f.stem] = writer.write_table(con, out, f, build(), compress)
    finally:
        con.close()
    paths = {f.stem: out / writer.file_name(f, compress) for f in fmt.ALL_FILES}
    return GenerationSummary(out_dir=out, paths=paths, rows=rows)
