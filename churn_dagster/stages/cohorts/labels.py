"""The label-period targets of each cohort and the user split (a seeded hash of the user id)."""

import json

import dagster as dg

from churn_dagster.core import checks
from churn_dagster.core.asset_attributes import cohort_asset
from churn_dagster.core.metadata import (
    add_partition_metadata,
    query_table,
    schema_metadata,
    table,
)
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.domain.engagement import LEVEL_NAMES, LEVEL_UPPER_BOUNDS
from churn_dagster.stages.cohorts.sql import labels as label_sql
from churn_dagster.storage.duck import atomic_path, literal_paths

MIN_USERS_FOR_SHARES = 100
# An independent SQL restatement of the level bounds, for the check that every stored level matches its score.
_LEVEL_NAME = "CASE level " + " ".join(f"WHEN {i} THEN '{n}'" for i, n in enumerate(LEVEL_NAMES)) + " END"
_LEVEL_FROM_SCORE = "CASE WHEN churned THEN 0 " + " ".join(
    f"WHEN score <= {bound} THEN {i + 1}" for i, bound in enumerate(LEVEL_UPPER_BOUNDS)) + f" ELSE {len(LEVEL_NAMES) - 1} END"


def label_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """``user_splits`` and ``label_scores``."""

    @dg.asset(
        description="Train/validation/test assignment per user: a seeded hash of the user id (md5 of user and seed), so a "
        "user's split is known the day the user joins the cohort, never changes when labels change, and is the same in "
        "every study and retrain. Each split's churn share is checked against its cohort's once the labels exist "
        "(label_scores' splits_balanced).",
        **cohort_asset(p, "labels", code_version="4"),
        deps=["cohort_users"],
        check_specs=[dg.AssetCheckSpec("no_user_in_two_splits", asset="user_splits", blocking=True,
                                    description="One row per user: no user is in two splits.")],
    )
    def user_splits(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        cohorts = [parse_day(k) for k in context.partition_keys]
        with lake.connect() as con:
            label_sql.build_splits(con, lake.lake, cohorts, features.split)
            out = [lake.lake.cohort("user_splits", c) for c in cohorts]
            add_partition_metadata(context, con, dict(zip(context.partition_keys, out, strict=True)), lambda _k, path: {
                "users_per_split": query_table(con, "SELECT split, count(*) AS users FROM read_parquet($f, "
                                               "hive_partitioning = false) GROUP BY ALL ORDER BY ALL",
                                               {"f": literal_paths([path])})})
            meta = {**schema_metadata(con, out), **features.metadata(p.calendar)}
            result = checks.unique_rows(con, "no_user_in_two_splits", out, "user_id")
        return dg.MaterializeResult(metadata=meta, check_results=[result])

    @dg.asset(
        description="Label-period targets: churned (no impression in the label period), the components F, impressions "
        "and Qraw, and I, Q, score and level 0-4 under P95 thresholds fit on this cohort's training split (stored in "
        "cohorts/label_thresholds/cohort=<day>.json), with each user's split from user_splits. Each model re-derives "
        "the levels from the components with thresholds fit on its own protocol's training users.",
        **cohort_asset(p, "labels", code_version="4"),
        deps=["cohort_users", "user_splits", dg.AssetDep("user_day_activity", partition_mapping=p.label_days)],
        check_specs=[
            dg.AssetCheckSpec("label_shares_sane", asset="label_scores", blocking=True,
                              description="Every level boundary respected and scores in [0, 1] (blocks the models); a churn "
                              "share outside 5-95% (judged from 100 users on) only warns."),
            dg.AssetCheckSpec("splits_balanced", asset="label_scores",
                              description=f"Each split's churn share within {label_sql.BALANCE_TOLERANCE_SE:g} standard "
                              f"errors of its cohort's (judged from {label_sql.MIN_USERS_FOR_BALANCE} users in a split on); "
                              "the split is a hash of the user id, so an imbalance only warns."),
        ],
    )
    def label_scores(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        cohorts = [parse_day(k) for k in context.partition_keys]
        with lake.connect() as con:
            _, thresholds = label_sql.build_labels(con, lake.lake, p.calendar, cohorts)
            for c, t in thresholds.items():
                with atomic_path(lake.lake.thresholds(c)) as tmp:
                    tmp.write_text(json.dumps(t.to_dict() if t else {"undefined": "no active user in the training split"},
                                              indent=2))
            scores = [lake.lake.cohort("label_scores", c) for c in cohorts]
            users, churn_share, bad_levels, out_of_range = con.execute(
                f"""SELECT count(*), coalesce(avg(churned::INT), 0),
                    coalesce(count_if(level <> {_LEVEL_FROM_SCORE}), 0),
                    coalesce(count_if(greatest(frequency, intensity, quality, score) > 1
                                      OR least(frequency, intensity, quality, score) < 0), 0)
                    FROM read_parquet($f, hive_partitioning = false)""",
                {"f": literal_paths(scores)},
            ).fetchone()

            def score_meta(key, path):
                f = {"f": literal_paths([path])}
                t = thresholds[parse_day(key)]
                share = con.execute("SELECT coalesce(avg(churned::INT), 0) FROM read_parquet($f, hive_partitioning = false)",
                                    f).fetchone()[0]
                return {
                    "reads_days": p.days_read(p.calendar.label_dts(parse_day(key))),
                    "split_by_churn": query_table(
                        con, "SELECT split, churned, count(*) AS users FROM read_parquet($f, hive_partitioning = false) "
                        "GROUP BY ALL ORDER BY ALL", f),
                    "level_distribution": query_table(
                        con, f"SELECT level, {_LEVEL_NAME} AS name, count(*) AS users, "
                        "round(count(*) / sum(count(*)) OVER (), 4) AS share "
                        "FROM read_parquet($f, hive_partitioning = false) GROUP BY level ORDER BY level", f),
                    "churn_share": dg.MetadataValue.float(float(share)),
                    "thresholds": table(["P95 impressions", "P95 Qraw", "fit on users"],
                                        [(t.p95_impressions, t.p95_quality_raw, t.fitted_on_users) if t else
                                         ("undefined", "undefined", 0)]),
                }

            meta = {**schema_metadata(con, scores), **features.metadata(p.calendar)}
            add_partition_metadata(context, con, dict(zip(context.partition_keys, scores, strict=True)), score_meta)
            balance = label_sql.split_balance(con.execute(
                "SELECT cohort_day, split, churned FROM read_parquet($f, hive_partitioning = false)",
                {"f": literal_paths(scores)}).df())
        off = [b for b in balance if not b.balanced]
        balanced = dg.AssetCheckResult(
            check_name="splits_balanced", passed=not off, severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(f"{b.cohort} {b.split}: churn share {b.churn_share:.3f} of {b.users} users against "
                                  f"{b.cohort_share:.3f} ({b.standard_errors:+.1f} SE)" for b in off)
            or (f"all {len(balance)} splits within {label_sql.BALANCE_TOLERANCE_SE:g} SE of their cohort's churn share "
                f"(largest {max((abs(b.standard_errors) for b in balance), default=0):.1f} SE)"),
            metadata={"splits": table(["cohort", "split", "users", "churn share", "cohort churn share", "SE from cohort"],
                                      [(b.cohort.isoformat(), b.split, b.users, b.churn_share, b.cohort_share,
                                        b.standard_errors) for b in balance])},
        )
        share_ok = users < MIN_USERS_FOR_SHARES or 0.05 <= churn_share <= 0.95
        share_text = (f"churn share {churn_share:.3f} of {users} users" if users >= MIN_USERS_FOR_SHARES else
                      f"{users} users, too few to judge the churn share")
        consistent = bad_levels == 0 and out_of_range == 0
        # A broken level or score is an error that stops the models; an unusual churn share only warns.
        sane = dg.AssetCheckResult(
            check_name="label_shares_sane", passed=share_ok and consistent,
            severity=dg.AssetCheckSeverity.ERROR if not consistent else dg.AssetCheckSeverity.WARN,
            description=f"{share_text}; {bad_levels} level/score mismatches; {out_of_range} values outside [0, 1]",
        )
        return dg.MaterializeResult(metadata=meta, check_results=[sane, balanced])

    return [user_splits, label_scores]
