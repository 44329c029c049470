"""Loading the published NCM files: physical lines → strictly typed, rule-checked rows → per-day Parquet and
quarantine files, in one ordered streaming pass (see :mod:`churn_dagster.stages.ingest.sql.run`)."""

from churn_dagster.stages.ingest.sql.header import BadInputError, file_columns
from churn_dagster.stages.ingest.sql.rules import RULES, stored_columns
from churn_dagster.stages.ingest.sql.run import (
           SNAPSHOT_SCOPE,
           IngestResult,
           SourceFile,
           ingest,
)

__all__ = ["RULES", "SNAPSHOT_SCOPE", "BadInputError", "IngestResult", "SourceFile", "file_columns", "ingest",
           "stored_columns"]
