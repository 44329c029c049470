"""Cohort membership: the users first seen on each cohort day, with the day numbers of their windows."""

import dagster as dg

from churn_dagster.core import checks
from churn_dagster.core.asset_attributes import cohort_asset
from churn_dagster.core.metadata import add_partition_metadata, check, schema_metadata
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.stages.cohorts.sql import cohorts as cohort_sql
from churn_dagster.storage.duck import literal_paths


def membership_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """``cohort_users``."""

    @dg.asset(
        description="Users whose first impression is on the cohort day, with the day numbers (dt) of their "
        "observation window and label period. Reads every day up to the cohort day, since being new on day f "
        "means not being seen before it.",
        **cohort_asset(p, "cohorts", code_version="1"),
        deps=[dg.AssetDep("user_day_activity", partition_mapping=p.days_until_cohort)],
        check_specs=[
            dg.AssetCheckSpec("unique_users", asset="cohort_users", blocking=True, description="No user in two cohorts."),
            dg.AssetCheckSpec("first_appearance", asset="cohort_users", blocking=True,
                              description="No cohort user has activity before the cohort day."),
        ],
    )
    def cohort_users(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        cohorts = [parse_day(k) for k in context.partition_keys]
        with lake.connect() as con:
            counts = cohort_sql.build_cohort_users(con, lake.lake, p.calendar, cohorts)
            out = [lake.lake.cohort("cohort_users", c) for c in cohorts]
            every_cohort = sorted((lake.lake.root / "cohorts" / "cohort_users").glob("cohort=*/data.parquet"))
            earlier = cohort_sql.activity_paths(lake.lake, p.calendar, range(1, p.calendar.dt(max(cohorts))), "check")
            seen_before = 0
            if earlier:
                seen_before = con.execute(
                    """SELECT count(*) FROM read_parquet($u, hive_partitioning = false) u
                       WHERE EXISTS (SELECT 1 FROM read_parquet($a, hive_partitioning = false) a
                                     WHERE a.user_id = u.user_id AND a.dt < u.first_dt)""",
                    {"u": literal_paths(out), "a": earlier},
                ).fetchone()[0]
            meta = {**schema_metadata(con, out), **features.metadata(p.calendar)}
            add_partition_metadata(context, con, dict(zip(context.partition_keys, out, strict=True)),
                                   lambda key, _path: {"reads_days": p.days_read(range(1, p.calendar.dt(parse_day(key)) + 1))})
            empty = [c.isoformat() for c, n in sorted(counts.items()) if n == 0]
            if empty:
                meta["note"] = dg.MetadataValue.text(
                    f"no user was first seen on {', '.join(empty)}: empty partition(s), skipped by training")
            results = [
                checks.unique_rows(con, "unique_users", every_cohort, "user_id"),
                check("first_appearance", seen_before == 0, f"{seen_before} cohort users were active before their cohort day"),
            ]
        return dg.MaterializeResult(metadata=meta, check_results=results)

    return [cohort_users]
