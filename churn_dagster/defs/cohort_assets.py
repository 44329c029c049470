"""Daily activity, cohort membership, and the label-period targets with the user split."""


import json

import dagster as dg

from churn_dagster.calendar import parse_day
from churn_dagster.defs import checks
from churn_dagster.defs.metadata import check, markdown_table, parquet_metadata, per_partition_table, query_markdown
from churn_dagster.defs.partitions import CALENDAR, cohort_partitions, day_partitions, days_until_cohort, label_days
from churn_dagster.defs.raw_assets import OWNERS
from churn_dagster.defs.resources import FeatureSettingsResource, LakeResource
from churn_dagster.transforms import cohorts as cohort_sql
from churn_dagster.transforms import labels as label_sql
from churn_dagster.transforms.duck import atomic_path, literal_paths
from churn_dagster.engagement import LEVEL_NAMES, LEVEL_UPPER_BOUNDS


@dg.asset(
    description="One row per user and active day: impressions, clicks, actions, view time, feed requests. "
    "First appearances and label-period activity read this instead of the impression log.",
    group_name="activity",
    kinds={"duckdb", "parquet"},
    owners=OWNERS,
    code_version="1",
    partitions_def=day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["raw_impressions"],
    check_specs=[
        dg.AssetCheckSpec("impressions_accounted", asset="user_day_activity",
                          description="Summed impressions equal the raw impression rows of the same days."),
        dg.AssetCheckSpec("one_row_per_user_day", asset="user_day_activity"),
    ],
)
def user_day_activity(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    days = [parse_day(k) for k in context.partition_keys]
    with lake.connect() as con:
        counts = {d: cohort_sql.build_user_day_activity(con, lake.lake, d) for d in days}
        out = [lake.lake.daily("user_day_activity", d) for d in days]
        raw = literal_paths(lake.lake.raw_day("impression_data", d) for d in days)
        summed = con.execute(
            "SELECT coalesce(sum(impressions), 0) FROM read_parquet($f, hive_partitioning = false)",
            {"f": literal_paths(out)},
        ).fetchone()[0]
        raw_rows = con.execute("SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata($f)", {"f": raw}).fetchone()[0]
        meta = parquet_metadata(con, out)
        meta["active_users_per_day"] = per_partition_table(counts, "active users")
        results = [
            check("impressions_accounted", summed == raw_rows, f"{summed} summed vs {raw_rows} raw rows"),
            checks.unique_rows(con, "one_row_per_user_day", out, "(user_id, dt)"),
        ]
    return dg.MaterializeResult(metadata=meta, check_results=results)


@dg.asset(
    description="Users whose first impression is on the cohort day, with the day numbers (dt) of their "
    "observation window and label period. Reads every day up to the cohort day, since being new on day f "
    "means not being seen before it.",
    group_name="cohorts",
    kinds={"duckdb", "parquet"},
    owners=OWNERS,
    code_version="1",
    partitions_def=cohort_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[dg.AssetDep("user_day_activity", partition_mapping=days_until_cohort)],
    check_specs=[
        dg.AssetCheckSpec("unique_users", asset="cohort_users", description="No user in two cohorts."),
        dg.AssetCheckSpec("first_appearance", asset="cohort_users",
                          description="No cohort user has activity before the cohort day."),
    ],
)
def cohort_users(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
    cohorts = [parse_day(k) for k in context.partition_keys]
    with lake.connect() as con:
        counts = cohort_sql.build_cohort_users(con, lake.lake, CALENDAR, cohorts)
        out = [lake.lake.cohort("cohort_users", c) for c in cohorts]
        every_cohort = sorted((lake.lake.root / "cohorts" / "cohort_users").glob("cohort=*/data.parquet"))
        earlier = cohort_sql.activity_paths(lake.lake, CALENDAR, range(1, CALENDAR.dt(max(cohorts))), "check")
        seen_before = 0
        if earlier:
            seen_before = con.execute(
                """SELECT count(*) FROM read_parquet($u, hive_partitioning = false) u
                   WHERE EXISTS (SELECT 1 FROM read_parquet($a, hive_partitioning = false) a
                                 WHERE a.user_id = u.user_id AND a.dt < u.first_dt)""",
                {"u": literal_paths(out), "a": earlier},
            ).fetchone()[0]
        meta = parquet_metadata(con, out)
        meta.update(features.metadata())
        meta["users_per_cohort"] = per_partition_table(counts, "users")
        empty = [c.isoformat() for c, n in sorted(counts.items()) if n == 0]
        if empty:
            meta["note"] = dg.MetadataValue.text(
                f"no user was first seen on {', '.join(empty)}: empty partition(s), skipped by training")
        results = [
            checks.unique_rows(con, "unique_users", every_cohort, "user_id"),
            check("first_appearance", seen_before == 0, f"{seen_before} cohort users were active before their cohort day"),
        ]
    return dg.MaterializeResult(metadata=meta, check_results=results)


MIN_USERS_FOR_SHARES = 100
# An independent SQL restatement of the level bounds, for the check that every stored level matches its score.
_LEVEL_FROM_SCORE = "CASE WHEN churned THEN 0 " + " ".join(
    f"WHEN score <= {bound} THEN {i + 1}" for i, bound in enumerate(LEVEL_UPPER_BOUNDS)) + f" ELSE {len(LEVEL_NAMES) - 1} END"


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "user_splits",
            description="Train/validation/test assignment per user, stratified by churn within each cohort, "
            "seeded (md5 of user and seed).",
            group_name="labels", kinds={"duckdb", "parquet"}, owners=OWNERS, code_version="2",
            deps=["cohort_users", dg.AssetDep("user_day_activity", partition_mapping=label_days)],
        ),
        dg.AssetSpec(
            "label_scores",
            description="Label-period targets: churned (no impression in the label period), the components F, "
            "impressions and Qraw, and I, Q, score and level 0-4 under P95 thresholds fit on this cohort's training "
            "split (stored in cohorts/label_thresholds/cohort=<day>.json). Each model re-derives the levels from "
            "the components with thresholds fit on its own protocol's training users.",
            group_name="labels", kinds={"duckdb", "parquet"}, owners=OWNERS, code_version="2",
            deps=["cohort_users", "user_splits", dg.AssetDep("user_day_activity", partition_mapping=label_days)],
        ),
    ],
    partitions_def=cohort_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[
        dg.AssetCheckSpec("no_user_in_two_splits", asset="user_splits"),
        dg.AssetCheckSpec("label_shares_sane", asset="label_scores",
                          description="Churn share within 5-95% (judged from 100 users on), every level boundary "
                          "respected, scores in [0, 1]."),
    ],
)
def label_targets(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
    cohorts = [parse_day(k) for k in context.partition_keys]
    with lake.connect() as con:
        rows, thresholds = label_sql.build_labels(con, lake.lake, CALENDAR, cohorts, features.split)
        for c, t in thresholds.items():
            with atomic_path(lake.lake.thresholds(c)) as tmp:
                tmp.write_text(json.dumps(t.to_dict() if t else {"undefined": "no active user in the training split"},
                                          indent=2))
        splits = [lake.lake.cohort("user_splits", c) for c in cohorts]
        scores = [lake.lake.cohort("label_scores", c) for c in cohorts]
        f = {"f": literal_paths(scores)}
        levels = query_markdown(
            con,
            "SELECT level, count(*) AS users, round(count(*) / sum(count(*)) OVER (), 4) AS share "
            "FROM read_parquet($f, hive_partitioning = false) GROUP BY level ORDER BY level",
            f,
        )
        users, churn_share, bad_levels, out_of_range = con.execute(
            f"""SELECT count(*), coalesce(avg(churned::INT), 0),
                count_if(level <> {_LEVEL_FROM_SCORE}),
                count_if(greatest(frequency, intensity, quality, score) > 1 OR least(frequency, intensity, quality, score) < 0)
                FROM read_parquet($f, hive_partitioning = false)""",
            f,
        ).fetchone()
        split_meta = parquet_metadata(con, splits)
        split_meta["split_by_churn"] = dg.MetadataValue.md(query_markdown(
            con,
            "SELECT split, churned, count(*) AS users FROM read_parquet($f, hive_partitioning = false) "
            "GROUP BY ALL ORDER BY ALL", {"f": literal_paths(splits)},
        ))
        score_meta = parquet_metadata(con, scores)
        score_meta.update(features.metadata())
        score_meta.update({
            "level_distribution": dg.MetadataValue.md(levels + "\n\nLevels: " + ", ".join(
                f"{i} {n}" for i, n in enumerate(LEVEL_NAMES))),
            "churn_share": dg.MetadataValue.float(float(churn_share)),
            "thresholds": dg.MetadataValue.md(markdown_table(
                ["cohort", "P95 impressions", "P95 Qraw", "fit on users"],
                [(c.isoformat(), *((t.p95_impressions, t.p95_quality_raw, t.fitted_on_users) if t else
                                   ("undefined", "undefined", 0))) for c, t in thresholds.items()],
            )),
            "users_per_cohort": per_partition_table(rows, "users"),
        })
        split_check = checks.unique_rows(con, "no_user_in_two_splits", splits, "user_id", asset_key="user_splits")
    yield dg.MaterializeResult(asset_key="user_splits", metadata=split_meta)
    yield dg.MaterializeResult(asset_key="label_scores", metadata=score_meta)
    yield split_check
    share_ok = users < MIN_USERS_FOR_SHARES or 0.05 <= churn_share <= 0.95
    share_text = (f"churn share {churn_share:.3f} of {users} users" if users >= MIN_USERS_FOR_SHARES else
                  f"{users} users, too few to judge the churn share")
    yield check(
        "label_shares_sane",
        share_ok and bad_levels == 0 and out_of_range == 0,
        f"{share_text}; {bad_levels} level/score mismatches; {out_of_range} values outside [0, 1]",
        asset_key="label_scores",
    )
