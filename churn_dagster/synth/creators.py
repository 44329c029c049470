"""Creators: their profile table and their daily publication counts.

``creator_stats`` is consistent with the card table: ``PushlishMlogCnt`` on a day is the number of the creator's
cards whose publication dt is that day. Like the real file it is not a full panel (about 28.4 of 30 days per
creator, most of them zeros) and it is written in blocks of one dt each, the blocks in shuffled order.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from . import ids
from .catalog import Catalog

_GENDERS = np.array(["", "female", "male", "unknown"], dtype=object)
_GENDER_P = (0.42, 0.307, 0.268, 0.005)
_TYPES = np.array([0, 4, 201, 2, 200, 300, 204, 10, 3, 202, 1])
_TYPE_P = np.array([0.945, 0.048, 0.0015, 0.0012, 0.001, 0.0008, 0.0007, 0.0005, 0.0005, 0.0004, 0.0004])
_LEVEL_P = (0.01, 0.015, 0.015, 0.03, 0.04, 0.06, 0.17, 0.29, 0.26, 0.10, 0.01)  # levels 0..10
_PRESENT_SHARE = 28.4 / 30  # share of creator-days that have a row


def creator_ids(n: int, rng: np.random.Generator) -> pa.LargeStringArray:
    return ids.make_ids(n, ids.CREATOR_IDS, rng)


def creator_demographics(cids: pa.Array, rng: np.random.Generator) -> pa.Table:
    """Profiles with the real marginals: 42% empty gender, heavy-tailed follower counts, mostly type 0."""
    n = len(cids)
    months = np.clip(np.round(rng.normal(28.0, 14.0, n)), 0, 80).astype(np.int64)
    months[rng.random(n) < 2e-5] = 608  # the impossible outlier of the real table
    follows = np.minimum(np.round(rng.lognormal(np.log(17.0), 1.29, n)), 2000)
    followeds = np.minimum(np.round(np.exp(np.log(9.0) + 1.8 * rng.standard_t(4, n))), 3_574_193)
    return pa.table(
        {
            "creator_id": cids,
            "gender": pa.array(_GENDERS[rng.choice(4, n, p=_GENDER_P)], pa.large_string()),
            "registered_month_cnt": pa.array(months, pa.int32()),
            "follows": pa.array(follows.astype(np.int64)),
            "followeds": pa.array(followeds.astype(np.int64)),
            "creator_type": pa.array(_TYPES[rng.choice(len(_TYPES), n, p=_TYPE_P / _TYPE_P.sum())], pa.int32()),
            "level": pa.array(rng.choice(11, n, p=_LEVEL_P), pa.int8()),
        }
    )


def creator_stats(cat: Catalog, cids: pa.Array, rng: np.random.Generator) -> pa.Table:
    """Creator x dt publication counts from the card table, zero days thinned, dt blocks in shuffled order."""
    n_creators, days = len(cids), cat.days
    published_dt = days + 1 - cat.publish_time
    inside = published_dt >= 1
    counts = np.bincount(
        cat.creator[inside].astype(np.int64) * days + (published_dt[inside] - 1),
        minlength=n_creators * days,
    ).reshape(n_creators, days)
    present = (counts > 0) | (rng.random(counts.shape) < _PRESENT_SHARE)
    creator_order = rng.permutation(n_creators)
    rows_creator, rows_day = [], []
    for day in rng.permutation(days):
        members = creator_order[present[creator_order, day]]
        rows_creator.append(members)
        rows_day.append(np.full(len(members), day, dtype=np.int64))
    creator = np.concatenate(rows_creator)
    day = np.concatenate(rows_day)
    return pa.table(
        {
            "creator_id": cids.take(pa.array(creator)),
            "dt": pa.array(day + 1, pa.int16()),
            "publish_mlog_count": pa.array(counts[creator, day], pa.int64()),
        }
    )
