"""Where every table lives under the data directory.

One Parquet file per partition, in Hive-style folders (``day=2019-11-05``, ``cohort=2019-11-01``) so any
engine can glob a table. Paths are derived from the table *and* the partition key, so partitions never
overwrite each other. The layout is documented in README.md ("On-disk layout").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from churn_dagster.errors import UserError


class MissingUpstreamError(UserError, FileNotFoundError):
    """An upstream partition this step reads has not been materialized yet."""


@dataclass(frozen=True)
class Lake:
    """Paths under ``root``. ``cohort_area`` names the folder of per-cohort outputs: ``cohorts`` for the
    labelled cohorts, ``scoring`` for the latest observation window and ``trend_inputs`` for the first trend
    period of the labelled cohorts; the last two are built by the same transforms from the same raw tables
    but over other windows, so they must not mix with the labelled partitions."""

    root: Path
    cohort_area: str = "cohorts"

    def raw_day(self, stem: str, day: date) -> Path:
        return self.root / "raw" / stem / f"day={day.isoformat()}" / "data.parquet"

    def raw_snapshot(self, stem: str) -> Path:
        return self.root / "raw" / stem / "data.parquet"

    def quarantine(self, stem: str, scope: str) -> Path:
        """Rejected rows of one kind of source file; ``scope`` is a day (``2019-11-05``), ``all`` for a
        snapshot file, or ``unassigned/<file name>`` for the rows of a file without a usable day, kept per
        source file so that ingesting one file never overwrites what another left."""
        return self.root / "quarantine" / stem / f"{scope}.parquet"

    def daily(self, table: str, day: date) -> Path:
        return self.root / "daily" / table / f"day={day.isoformat()}" / "data.parquet"

    def cohort(self, table: str, cohort: date) -> Path:
        return self.root / self.cohort_area / table / f"cohort={cohort.isoformat()}" / "data.parquet"

    def thresholds(self, cohort: date) -> Path:
        """The P95 thresholds of a cohort's engagement score, kept beside (not inside) the table folder."""
        return self.root / self.cohort_area / "label_thresholds" / f"cohort={cohort.isoformat()}.json"

    def tensors(self, cohort: date) -> Path:
        area = self.root if self.cohort_area == "cohorts" else self.root / self.cohort_area
        return area / "tensors" / f"cohort={cohort.isoformat()}"

    def model(self, name: str, cohort: date) -> Path:
        """The files of one model partition (metrics, test predictions), for the report."""
        return self.root / "models" / name / f"cohort={cohort.isoformat()}"

    def scoring(self) -> Lake:
        """The same lake with per-cohort outputs under ``scoring/``."""
        return Lake(self.root, "scoring")

    def trend_inputs(self) -> Lake:
        """The same lake with per-cohort outputs under ``trend_inputs/``: what the trend models read."""
        return Lake(self.root, "trend_inputs")

    @property
    def duckdb_spill(self) -> Path:
        return self.root / ".duckdb_tmp"


def require(paths: Iterable[Path], what: str) -> list[Path]:
    """Return ``paths`` if all exist, else fail naming every missing partition."""
    paths = list(paths)
    missing = [p for p in paths if not p.exists()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise MissingUpstreamError(f"{what}: {len(missing)} upstream partition(s) missing: {shown}{more}")
    return paths


def read_cohort_tables(lake: Lake, table: str, cohorts: list[date], what: str = "model training"):
    """One cohort table over several cohorts as a pandas DataFrame, in cohort order (an empty cohort adds no
    rows); ``what`` names the reader in the error when a partition is missing."""
    import pandas as pd  # the data graph reads with DuckDB; only the model side needs pandas

    return pd.concat([pd.read_parquet(p) for p in require([lake.cohort(table, c) for c in cohorts], what)],
                     ignore_index=True)
