"""Typed resources: where the published files are, where outputs go, and the feature settings.

Defaults come from environment variables (see README "Configuration"), checked by
:mod:`churn_dagster.settings`, so ``dagster dev``, ``dagster asset materialize`` and the ``churn-dagster``
CLI all resolve them the same way and reject the same bad values.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from churn_dagster.core.mlflow_resource import (
    MlflowResource,
    local_artifact_root,
    local_tracking_uri,
)
from churn_dagster.domain import ncm_format as fmt
from churn_dagster.domain.calendar import Calendar
from churn_dagster.domain.snapshots import leakage_warning
from churn_dagster.errors import UserError
from churn_dagster.settings import Settings
from churn_dagster.stages.cohorts.sql.labels import SplitSettings
from churn_dagster.stages.ingest.sql import SourceFile
from churn_dagster.storage.duck import DuckSettings, connect
from churn_dagster.storage.lake import Lake


class MissingSourceError(UserError, FileNotFoundError):
    """A published file is not in the source folder (or not for every day the run reads)."""


class DuplicateSourceError(UserError, FileExistsError):
    """A published file is there both plain and gzipped, so which one to read is ambiguous."""


class NcmSourceResource(dg.ConfigurableResource):
    """A folder holding the six NCM files as published (``<name>.csv`` or ``<name>.csv.gz``).

    Daily files may instead arrive one folder per day (``day=2019-11-21/impression_data.csv``), which is
    how the landing sensor sees new data; a run then reads only the folders of its days.
    """

    directory: str = Field(description="Folder with the published CSV files (or day=YYYY-MM-DD sub-folders).")

    def _one(self, folder: Path, stem: str) -> Path | None:
        # A symbolic link that loops or leads nowhere is there too: reading it says what is wrong with it.
        found = [p for p in (folder / f"{stem}.csv", folder / f"{stem}.csv.gz") if p.exists() or p.is_symlink()]
        if len(found) > 1:
            raise DuplicateSourceError(f"{folder}: both {found[0].name} and {found[1].name} exist; keep one")
        return found[0] if found else None

    def files_for(self, spec: fmt.NcmFile, days: list[date] | None) -> list[SourceFile]:
        """The whole file if the folder holds one, else one delivered file per day of the run."""
        root = Path(self.directory)
        if not root.is_dir():
            why = ("is a symbolic link that loops or leads nowhere" if root.is_symlink() else
                   "is a file, not a folder" if root.exists() else "does not exist")
            raise MissingSourceError(f"{root}: the source folder {why}")
        whole = self._one(root, spec.stem)
        if whole is not None:
            return [SourceFile(whole)]
        if spec.daily and days:
            per_day = {d: self._one(root / f"day={d.isoformat()}", spec.stem) for d in days}
            missing = [d.isoformat() for d, p in per_day.items() if p is None]
            if not missing:
                return [SourceFile(path, delivered_day=d) for d, path in per_day.items()]
            raise MissingSourceError(
                f"{root}: no {spec.stem}.csv(.gz) at the top level, and none in day=... folders for {', '.join(missing)}"
            )
        raise MissingSourceError(f"{root}: {spec.stem}.csv or {spec.stem}.csv.gz not found")


class LakeResource(dg.ConfigurableResource):
    """The data directory and the DuckDB limits used by every transform."""

    data_dir: str = Field(description="Root of all pipeline outputs (CHURN_DATA_DIR).")
    duckdb_memory_limit: str = Field(default="6GB", description="DuckDB memory_limit; larger work spills to disk.")
    duckdb_threads: int = Field(default=2, description="DuckDB worker threads.")

    @property
    def lake(self) -> Lake:
        return Lake(Path(self.data_dir))

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect(DuckSettings(self.duckdb_memory_limit, self.duckdb_threads, self.lake.duckdb_spill))
        try:
            yield con
        finally:
            con.close()


class FeatureSettingsResource(dg.ConfigurableResource):
    """Settings every cohort must share, so they live in one resource rather than in per-run config."""

    session_gap_minutes: float = Field(default=30.0, gt=0, description="A gap this long or longer starts a new session.")
    max_sessions: int = Field(default=192, gt=0, description="Sequence length; longer histories keep the latest sessions.")
    train_fraction: float = Field(default=0.70, description="Share of each cohort's users in the training split.")
    validation_fraction: float = Field(default=0.15, description="Share in the validation split; the rest is test.")
    split_seed: int = Field(default=42, description="Seed of the user split (a hash of the user id and the seed).")
    publish_day_anchor: int = Field(
        default=31, description="publishTime counts days back from this dt (31 as in most analyses; 32 also seen)."
    )
    use_leaky_columns: bool = Field(
        default=False,
        description="Use the snapshot columns measured on 1 Dec 2019, after every label period (the user's follow "
        "count, the creators' followers and account types; churn_dagster/domain/snapshots.py), as features. They "
        "leak the label period; off by default, and on only to measure that.",
    )
    use_content_stats: bool = Field(
        default=True,
        description="Add the card popularity, freshness and creator activity KPIs (mlog_stats and creator_stats of "
        "the observation days). Off only to measure what they add.",
    )

    @property
    def split(self) -> SplitSettings:
        return SplitSettings(self.train_fraction, self.validation_fraction, self.split_seed)

    def metadata(self, calendar: Calendar) -> dict[str, dg.MetadataValue]:
        """The settings a cohort partition was built with, for its metadata: partitions built with other
        settings can then be told apart in the UI. Includes a warning when a leaking column is on."""
        meta = {
            "settings": dg.MetadataValue.json({
                "session_gap_minutes": self.session_gap_minutes, "max_sessions": self.max_sessions,
                "split": {"train": self.train_fraction, "validation": self.validation_fraction, "seed": self.split_seed},
                "observation_days": calendar.observation_days, "label_days": calendar.label_days,
                "days": f"{calendar.first_day} .. {calendar.last_day}", "use_leaky_columns": self.use_leaky_columns,
                "use_content_stats": self.use_content_stats,
            }),
        }
        if self.use_leaky_columns:
            meta["warning"] = dg.MetadataValue.text(leakage_warning())
        return meta


def _settings_fields(settings: Settings, reference) -> dict[str, dict]:
    """Each resource's fields from ``settings``, as ``reference(variable, value, whole_number)`` gives them (an
    ``EnvVar`` naming a variable that was set, or the value)."""
    server = settings.mlflow_tracking_uri
    return {
        "source": {"directory": reference("CHURN_SOURCE_DIR", str(settings.source_dir))},
        "lake": {
            "data_dir": reference("CHURN_DATA_DIR", str(settings.data_dir)),
            "duckdb_memory_limit": reference("CHURN_DUCKDB_MEMORY_LIMIT", settings.duckdb_memory_limit),
            "duckdb_threads": reference("CHURN_DUCKDB_THREADS", settings.duckdb_threads, True),
        },
        "mlflow": {
            "tracking_uri": reference("MLFLOW_TRACKING_URI", server or local_tracking_uri(settings.data_dir)),
            "artifact_root": reference("CHURN_MLFLOW_ARTIFACT_ROOT", settings.mlflow_artifact_root
                                       or (None if server else local_artifact_root(settings.data_dir))),
            "ui_url": reference("CHURN_MLFLOW_UI_URL", settings.mlflow_ui_url),
            "min_validation_positives": reference("CHURN_MIN_VALIDATION_POSITIVES", settings.min_validation_positives,
                                                  True),
            "min_validation_negatives": reference("CHURN_MIN_VALIDATION_NEGATIVES", settings.min_validation_negatives,
                                                  True),
            "promotion_margin": settings.promotion_margin,
        },
        "features": {
            "session_gap_minutes": settings.session_gap_minutes,
            "max_sessions": settings.max_sessions,  # bounded (> 0), which Dagster checks only on plain values
            "split_seed": reference("CHURN_SPLIT_SEED", settings.split_seed, True),
            "use_leaky_columns": settings.use_leaky_columns,
            "use_content_stats": settings.use_content_stats,
        },
    }


RESOURCE_CLASSES = {"source": NcmSourceResource, "lake": LakeResource, "mlflow": MlflowResource,
                    "features": FeatureSettingsResource}


def settings_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources of the code location from ``settings``. A variable that was set where the settings were
    read reaches its field as ``dg.EnvVar`` (the UI's Resources tab names it, and each run reads it when it
    starts); Dagster reads text and whole numbers from the environment, so other types, and fields with bounds
    (which Dagster checks on plain values only), take their validated value, as do unset variables."""

    def reference(variable: str, value, whole_number: bool = False):
        if variable not in settings.set_variables:
            return value
        return dg.EnvVar.int(variable) if whole_number else dg.EnvVar(variable)

    return {name: RESOURCE_CLASSES[name](**fields) for name, fields in _settings_fields(settings, reference).items()}


def settings_run_config(settings: Settings) -> dict:
    """The same settings as plain values, as the ``resources`` section of a run's config: a run launched with
    it uses these settings (the CLI's ``--source`` and ``--data-dir`` included) whichever code server executes
    it. Fields left out keep their defaults, which are the ones the code location binds too."""
    fields = _settings_fields(settings, lambda _variable, value, _whole_number=False: value)
    return {"resources": {name: {"config": {k: v for k, v in values.items() if v is not None}}
                          for name, values in fields.items()}}
