"""The user table: province, age, gender, months registered, follow count and activity level.

Age and gender are missing together (35.55% of rows), almost always for users registered at most a month ago
(97.7% of them). ``level`` is measured on 1 Dec 2019 and tracks engagement at the end of the log, which is why
the project treats it as leaky. A few rows are empty except for the ID (0.02%), and a few impression users have no
row at all (69 of 2,085,602), as in the real table.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .population import Users

PROVINCES = np.array(
    ["guang dong", "jiang su", "zhe jiang", "shan dong", "he nan", "si chuan", "shan xi", "xin jiang", "hu bei",
     "hu nan", "bei jing", "he bei", "an hui", "jiang xi", "shang hai", "fu jian", "guang xi", "zhong qing",
     "yun nan", "liao ning", "gui zhou", "hei long jiang", "nei meng gu", "ji lin", "wei zhi", "gan su",
     "tian jin", "hai nan", "qing hai", "hai wai", "ning xia", "xi cang", "xiang gang", "ao men", "tai wan"],
    dtype=object,
)  # fmt: skip
# Counts per 10,000 users in the real head, same order.
_PROVINCE_WEIGHTS = np.array(
    [1172, 744, 556, 542, 535, 517, 517, 426, 378, 360, 356, 348, 346, 290, 284, 284, 271, 236, 236, 229, 212,
     206, 147, 139, 138, 134, 129, 71, 62, 47, 45, 28, 7, 5, 1],
    dtype=float,
)  # fmt: skip
_GENDERS = np.array(["male", "female", "unknown"], dtype=object)
_GENDER_P = (0.548, 0.428, 0.024)
_LEVEL_CDF = np.cumsum([0.026, 0.039, 0.032, 0.059, 0.057, 0.121, 0.208, 0.274, 0.149, 0.032, 0.003])
MISSING_PROFILE_SHARE = 0.318  # age and gender missing, users registered more than a month ago
MISSING_PROFILE_NEW = 0.977  # the same for users registered at most a month ago
EMPTY_ROW_SHARE = 409 / 2_085_533
NO_ROW_SHARE = 69 / 2_085_602
OUTLIER_MONTHS = 608


def _ages(gender: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Median 22, quartiles near 19/24, 11..57; girls are younger (female majority at 12-16, male from 17)."""
    n = len(gender)
    centre = np.where(gender == "female", 20.3, 22.3)
    age = rng.normal(centre, 3.4, n)
    older = rng.random(n) < 0.03
    age[older] = rng.uniform(26, 57, int(older.sum()))
    return np.clip(np.round(age), 11, 57).astype(np.int64)


def _levels(users: Users, rng: np.random.Generator) -> np.ndarray:
    """Level 0..10 with the real marginal, ranked by engagement over the last week plus noise."""
    recent = users.z[:, -7:].mean(axis=1) + rng.normal(0.0, 1.5, users.n)
    quantile = (np.argsort(np.argsort(recent)) + 0.5) / users.n
    return np.searchsorted(_LEVEL_CDF / _LEVEL_CDF[-1], quantile, side="right").clip(max=10)


def user_demographics(users: Users, user_ids: pa.Array, rng: np.random.Generator) -> pa.Table:
    """Rows for the chunk's users (minus the few without a row), in a shuffled order."""
    n = users.n
    months = users.tenure_months.astype(np.int64)
    months[rng.random(n) < 3e-6] = OUTLIER_MONTHS
    missing = rng.random(n) < np.where(months <= 1, MISSING_PROFILE_NEW, MISSING_PROFILE_SHARE)
    gender = _GENDERS[rng.choice(3, n, p=_GENDER_P)]
    age = _ages(gender, rng)
    province = PROVINCES[rng.choice(len(PROVINCES), n, p=_PROVINCE_WEIGHTS / _PROVINCE_WEIGHTS.sum())]
    follows = np.minimum(np.floor(rng.lognormal(np.log(5.5), 0.9, n)), 2465).astype(np.int64)
    level = _levels(users, rng)
    empty = rng.random(n) < EMPTY_ROW_SHARE
    keep = rng.permutation(np.flatnonzero(rng.random(n) >= NO_ROW_SHARE))

    def column(values: np.ndarray, null: np.ndarray, kind: pa.DataType) -> pa.Array:
        return pa.array(values[keep], type=kind, mask=null[keep])

    return pa.table(
        {
            "user_id": user_ids.take(pa.array(keep)),
            "province": column(province, empty, pa.large_string()),
            "age": column(age, empty | missing, pa.int16()),
            "gender": column(gender, empty | missing, pa.large_string()),
            "registered_month_cnt": column(months, empty, pa.int16()),
            "follow_cnt": column(follows, empty, pa.int32()),
            "level": column(level, empty, pa.int8()),
        }
    )
