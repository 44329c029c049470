"""Raw tables: the six published files as typed Parquet, daily files partitioned by day.

One factory builds all six assets from ``ncm_format``; each run reads its source file once, whatever the
number of days it writes (a single-run backfill policy turns a backfill of 30 days into one pass).
"""


from collections.abc import Mapping
from datetime import date

import dagster as dg

from churn_dagster.core.constants import OWNERS
from churn_dagster.core.metadata import (
    add_partition_metadata,
    check,
    parquet_metadata,
    schema_metadata,
    table,
)
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import LakeResource, NcmSourceResource
from churn_dagster.domain import ncm_format as fmt
from churn_dagster.domain.calendar import parse_day
from churn_dagster.stages.ingest.sql import RULES, IngestResult, ingest, stored_columns
from churn_dagster.storage.duck import parquet_rows

ASSET_NAMES = {
    fmt.IMPRESSIONS.stem: "raw_impressions",
    fmt.USER_DEMOGRAPHICS.stem: "raw_user_demographics",
    fmt.MLOG_DEMOGRAPHICS.stem: "raw_mlog_demographics",
    fmt.MLOG_STATS.stem: "raw_mlog_stats",
    fmt.CREATOR_DEMOGRAPHICS.stem: "raw_creator_demographics",
    fmt.CREATOR_STATS.stem: "raw_creator_stats",
}


def _checks(name: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec("schema_matches", asset=name, blocking=True, description="Stored columns and types are the canonical ones."),
        dg.AssetCheckSpec(
            "rows_accounted",
            asset=name,
            description="Lines read (counted from the file's newline bytes) = rows in the written partitions + "
            "rows in the written quarantine files + rows of days outside the run.",
            blocking=True,
        ),
        dg.AssetCheckSpec(
            "quarantine_rate", asset=name, description="Less than 1% of the rows read were quarantined (warns)."
        ),
    ]


def _report(spec: fmt.NcmFile, result: IngestResult, con, files) -> tuple[dict, list[dg.AssetCheckResult]]:
    """The run's metadata (what was read from the source files and where it went) and its checks."""
    meta = parquet_metadata(con, files) if not spec.daily else schema_metadata(con, files)
    loaded_on_disk = parquet_rows(con, files)
    quarantined_on_disk = parquet_rows(con, result.quarantine_files)
    expected = stored_columns(spec)
    stored = [c.name for c in meta["dagster/column_schema"].columns]
    meta.update(
        {
            "source_files": dg.MetadataValue.md("\n".join(f"- `{s}`" for s in result.sources)),
            "rows_read": dg.MetadataValue.int(result.rows_read),
            "rows_loaded": dg.MetadataValue.int(result.total_loaded),
            "rows_quarantined": dg.MetadataValue.int(result.rows_quarantined),
            "rows_outside_run_days": dg.MetadataValue.int(result.rows_outside_run),
            "quarantine_reasons": table(["reason", "rows"], sorted(result.quarantined_by_reason.items())),
            "quarantine_files": dg.MetadataValue.md("\n".join(f"- `{q}`" for q in result.quarantine_files) or "none"),
        }
    )
    share = result.rows_quarantined / max(result.rows_read, 1)
    checks = [
        check("schema_matches", stored == expected, f"expected {expected}", stored=str(stored)),
        check(
            "rows_accounted",
            result.rows_read == loaded_on_disk + quarantined_on_disk + result.rows_outside_run,
            f"{result.rows_read} lines read; {loaded_on_disk} rows in the partitions + {quarantined_on_disk} in "
            f"quarantine + {result.rows_outside_run} of days outside the run",
        ),
        dg.AssetCheckResult(
            check_name="quarantine_rate",
            passed=share < 0.01,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{share:.4%} of rows quarantined",
        ),
    ]
    return meta, checks


def _impression_extras(tally: Mapping[str, int]) -> dict:
    """Figures of one day's loaded impressions, counted as they were written (``tallies``): pooled CTR, parsed
    swipe-down lists, actions without a click. A day without impressions is a normal day: its counts are 0 and
    its CTR, which has no impression to be a share of, is empty."""
    rows = tally.get("rows", 0)
    return {
        "pooled_ctr": dg.MetadataValue.float(tally["clicks"] / rows if rows else None),
        "detail_lists_parsed": dg.MetadataValue.int(tally.get("detail_lists", 0)),
        "actions_without_click": dg.MetadataValue.int(tally.get("actions_without_click", 0)),
    }


def build_raw_asset(p: Partitions, spec: fmt.NcmFile) -> dg.AssetsDefinition:
    name = ASSET_NAMES[spec.stem]
    description = (
        f"`{spec.stem}.csv` as published, typed and validated ({', '.join(c.source for c in spec.columns)}). "
        f"Every physical line is loaded or goes to `quarantine/{spec.stem}/` with its line number, column and "
        "reason; `source_line` keeps the line each row was read from. "
        f"Natural key: {', '.join(RULES[spec.stem].key)}."
    )

    @dg.asset(
        name=name,
        description=description,
        group_name="raw",
        kinds={"csv", "duckdb", "parquet"},
        owners=OWNERS,
        code_version="2",
        partitions_def=p.day_partitions if spec.daily else None,
        backfill_policy=dg.BackfillPolicy.single_run() if spec.daily else None,
        check_specs=_checks(name),
        tags={"layer": "raw"},
    )
    def _raw(context: dg.AssetExecutionContext, source: NcmSourceResource, lake: LakeResource) -> dg.MaterializeResult:
        days: list[date] | None = [parse_day(k) for k in context.partition_keys] if spec.daily else None
        files_in = source.files_for(spec, days)
        with lake.connect() as con:
            result = ingest(con, spec, files_in, lake.lake, p.calendar, days)
            out = [lake.lake.raw_day(spec.stem, d) for d in days] if days else [lake.lake.raw_snapshot(spec.stem)]
            meta, checks = _report(spec, result, con, out)
            if days:
                extras = (lambda key, _path: _impression_extras(result.tallies[key])) if spec is fmt.IMPRESSIONS else None
                add_partition_metadata(context, con, dict(zip(context.partition_keys, out, strict=True)), extras)
        context.log.info(
            f"{spec.stem}: read {result.rows_read}, loaded {result.total_loaded}, "
            f"quarantined {result.rows_quarantined}, outside run {result.rows_outside_run}"
        )
        return dg.MaterializeResult(metadata=meta, check_results=checks)

    return _raw


def raw_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """The six raw tables."""
    return [build_raw_asset(p, spec) for spec in fmt.ALL_FILES]
