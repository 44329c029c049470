"""Full-scale sequence tensors from a small twin's, for timing training on a machine that cannot build them.

    python -m bench.tile_tensors --data-dir SMALL --out DIR --users 841943 [--cohorts 2019-11-01:2019-11-07]

A lent GPU machine has torch but neither DuckDB nor Dagster, and the full-scale tensors (hundreds of MB)
are too big to send it, while a 20,000-user twin's are 4 MB. The twin's users are drawn independently of
its size, so its per-user sequence lengths and values follow the same distribution at any scale; repeating
each user of the small set ``k`` times gives the full-scale number of users with that distribution, which
is all an epoch's cost depends on (batches are padded to their longest user). Each cohort folder is written
in the layout :class:`~churn_dagster.stages.tensors.ml.data.CohortTensors` reads, with its
``normalization.json`` counts multiplied by ``k`` (means and standard deviations are unchanged by
repetition). For timing only: each copy keeps its user's split, but metrics over repeated users mean
nothing.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from churn_dagster.stages.tensors.ml.data import CohortTensors

COUNTS = ("users", "sessions", "train_users", "train_sessions")


def tile_cohort(cohort: CohortTensors, k: int, out: Path) -> int:
    """Write ``cohort`` with every user repeated ``k`` times to the folder ``out``; returns its users."""
    out.mkdir(parents=True, exist_ok=True)
    lengths = np.diff(cohort.offsets)
    np.save(out / "sequences.npy", np.tile(np.asarray(cohort.sequences), (k, 1)))
    np.save(out / "static.npy", np.tile(np.asarray(cohort.static), (k, 1)))
    np.save(out / "offsets.npy", np.concatenate([[0], np.cumsum(np.tile(lengths, k))]).astype(cohort.offsets.dtype))
    users = pd.concat([cohort.users.assign(user_id=cohort.users["user_id"] + f"~{copy}") for copy in range(k)],
                      ignore_index=True)
    users["row_idx"] = np.arange(len(users), dtype=np.int64)
    users.to_parquet(out / "users.parquet", index=False)
    meta = {**cohort.meta, **{key: cohort.meta[key] * k for key in COUNTS if key in cohort.meta}}
    (out / "normalization.json").write_text(json.dumps(meta, indent=1))
    return len(users)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, type=Path, help="a data directory holding tensors/")
    parser.add_argument("--out", required=True, type=Path, help="data directory to write tensors/ into")
    parser.add_argument("--users", type=int, default=841_943,
                        help="users wanted over the cohorts (default: cohorts dt 1-7 of the 1x twin)")
    parser.add_argument("--cohorts", default="2019-11-01:2019-11-07", help="FIRST:LAST cohort days")
    args = parser.parse_args()
    first, last = args.cohorts.split(":")
    dirs = [d for d in sorted((args.data_dir / "tensors").glob("cohort=*"))
            if first <= d.name.removeprefix("cohort=") <= last]
    if not dirs:
        raise SystemExit(f"no cohort folder between {first} and {last} under {args.data_dir / 'tensors'}")
    cohorts = [CohortTensors(d) for d in dirs]
    k = max(1, math.ceil(args.users / sum(len(c.users) for c in cohorts)))
    written = sum(tile_cohort(c, k, args.out / "tensors" / d.name) for c, d in zip(cohorts, dirs))
    print(f"{len(dirs)} cohorts, each user repeated {k} times: {written} users under {args.out / 'tensors'}")


if __name__ == "__main__":
    main()
