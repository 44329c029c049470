"""The case study's features (days 1..F) and labels (CTR over days F+1..F+T against a threshold fit on training
users), each a single table over the whole log.

Unpartitioned on purpose: the case study's population is every user seen in the first F days, whatever their
first day, and its windows are fixed days of the log rather than days relative to each user, so a partition
per cohort would only split one table in ten and let each cohort fit its own threshold. The lineage still
shows exactly the days read: the feature days and the target days of ``user_day_activity`` by explicit
partition mappings. A user's split is the project's (a seeded hash of the user id, as in ``user_splits``), so
it needs no table. The windows are ``CHURN_CASE_STUDY_FEATURE_DAYS`` and ``CHURN_CASE_STUDY_TARGET_DAYS``
(10 and 20), checked with the other settings when the code location loads.
"""

import json

import dagster as dg

from churn_dagster.core.constants import OWNERS
from churn_dagster.core.metadata import check, parquet_metadata, query_table, table
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.storage.duck import atomic_path, literal_paths, used_params
from churn_dagster.studies.case_study.sql import data as sql

CODE_VERSION = "2"  # the split is the seeded hash of the user id


def windows(p: Partitions) -> sql.Windows:
    """The case study's feature and target days (``CHURN_CASE_STUDY_FEATURE_DAYS`` and ``..._TARGET_DAYS``)."""
    return sql.Windows(p.settings.case_study_feature_days, p.settings.case_study_target_days)


def _days(p: Partitions, dts: range) -> dg.SpecificPartitionsPartitionMapping:
    return dg.SpecificPartitionsPartitionMapping([p.calendar.day(d).isoformat() for d in dts])


def _attributes(**extra) -> dict:
    return dict(group_name="case_study", kinds={"duckdb", "parquet"}, owners=OWNERS, code_version=CODE_VERSION, **extra)


def data_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """``case_study_features`` and ``case_study_labels``."""
    WINDOWS = windows(p)

    @dg.asset(
        description=f"Case study (NCM 2021) inputs: per user seen on days 1-{WINDOWS.feature_days}, those days' clicks, "
        "comments, homepage visits, shares, comment views, likes and view time summed, with province, age, gender and "
        "registered months (the follow count only with CHURN_USE_LEAKY_COLUMNS=1: it is measured after the target days).",
        deps=[dg.AssetDep("user_day_activity", partition_mapping=_days(p, WINDOWS.feature_dts)), "raw_user_demographics"],
        check_specs=[
            dg.AssetCheckSpec("one_row_per_user", asset="case_study_features", blocking=True,
                              description="Each user active in the feature window once."),
            dg.AssetCheckSpec("feature_days_only", asset="case_study_features", blocking=True,
                              description="No user's input day lies after the feature window."),
            dg.AssetCheckSpec("no_nan_features", asset="case_study_features", blocking=True,
                              description="Activity sums present and finite; demographics finite or missing (NULL)."),
        ],
        **_attributes(),
    )
    def case_study_features(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        with lake.connect() as con:
            users = sql.build_features(con, lake.lake, p.calendar, WINDOWS, features.use_leaky_columns)
            path = sql.features_path(lake.lake)
            f = {"f": literal_paths([path])}
            numeric = [*sql.ACTIVITY_FEATURES, "age", "registered_months",
                       *([sql.FOLLOW_COUNT] if features.use_leaky_columns else [])]
            bad_activity = " + ".join(f"count_if({c} IS NULL OR isnan({c}::DOUBLE) OR isinf({c}::DOUBLE))"
                                      for c in sql.ACTIVITY_FEATURES)
            bad_other = " + ".join(f"count_if(coalesce(isnan({c}::DOUBLE) OR isinf({c}::DOUBLE), false))" for c in numeric)
            distinct, late, bad = con.execute(
                f"SELECT count(DISTINCT user_id), count_if(last_feature_dt > {WINDOWS.feature_days}), "
                f"{bad_activity} + {bad_other} FROM read_parquet($f, hive_partitioning = false)", f).fetchone()
            summary = query_table(con, " UNION ALL ".join(
                f"SELECT '{c}' AS feature, avg({c}) AS mean, quantile_cont({c}, 0.5) AS median, "
                f"quantile_cont({c}, 0.99) AS p99, avg(({c} > 0)::INT) AS share_above_0, count({c}) AS present "
                f"FROM read_parquet($f, hive_partitioning = false)" for c in numeric), f)
            meta = {**parquet_metadata(con, [path]), **features.metadata(p.calendar), "feature_summary": summary,
                    "reads_days": p.days_read(WINDOWS.feature_dts)}
        return dg.MaterializeResult(metadata=meta, check_results=[
            check("one_row_per_user", distinct == users, f"{users} rows, {distinct} distinct users"),
            check("feature_days_only", late == 0,
                  f"{late} users have an input day after day {WINDOWS.feature_days}", violations=late),
            check("no_nan_features", bad == 0, f"{bad} missing, NaN or infinite activity sums or NaN/infinite demographics",
                  violations=bad),
        ])


    @dg.asset(
        description=f"Case study (NCM 2021) target: each feature user's CTR over days {WINDOWS.target_dts[0]}-"
        f"{WINDOWS.target_dts[-1]} and active = CTR above the mean CTR of the training users (fit on them only, stored "
        "in case_study/labels/threshold.json); no impression in those days = inactive. Split by the project's rule "
        "(a seeded hash of the user id, as in user_splits).",
        deps=["case_study_features", dg.AssetDep("user_day_activity", partition_mapping=_days(p, WINDOWS.target_dts))],
        check_specs=[
            dg.AssetCheckSpec("threshold_fit_on_training_users", asset="case_study_labels", blocking=True,
                              description="The stored threshold is the mean CTR of exactly the training users that have one."),
            dg.AssetCheckSpec("labels_consistent", asset="case_study_labels", blocking=True,
                              description="One row per feature user, a split each, and active exactly when CTR > threshold."),
        ],
        **_attributes(),
    )
    def case_study_labels(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        with lake.connect() as con:
            rows, threshold = sql.build_labels(con, lake.lake, p.calendar, WINDOWS, features.split)
            with atomic_path(sql.threshold_path(lake.lake)) as tmp:
                tmp.write_text(json.dumps({**threshold.to_dict(), "feature_days": WINDOWS.feature_days,
                                           "target_days": [WINDOWS.target_dts[0], WINDOWS.target_dts[-1]]}, indent=2))
            path = sql.labels_path(lake.lake)
            params = {"f": literal_paths([path]), "features": literal_paths([sql.features_path(lake.lake)]),
                      "t": float("inf") if threshold.value is None else threshold.value}
            # Recomputed from the file just written, independently of the SQL that fit it.
            train_mean, train_users, all_mean = con.execute(
                "SELECT avg(target_ctr) FILTER (WHERE split = 'train'), count(target_ctr) FILTER (WHERE split = 'train'), "
                "avg(target_ctr) FROM read_parquet($f, hive_partitioning = false)", used_params("$f", params)).fetchone()
            wrong, no_split, feature_users, distinct = con.execute(
                "SELECT count_if(active <> coalesce(target_ctr > $t, false) OR target_ctr IS DISTINCT FROM "
                "CASE WHEN target_impressions > 0 THEN target_clicks / target_impressions END), "
                "count_if(split IS NULL OR split NOT IN ('train', 'validation', 'test')), "
                "(SELECT count(*) FROM read_parquet($features, hive_partitioning = false)), count(DISTINCT user_id) "
                "FROM read_parquet($f, hive_partitioning = false)", params).fetchone()
            shares = query_table(con, "SELECT split, count(*) AS users, count(target_ctr) AS with_target_impressions, "
                                 "avg(active::INT) AS active_share "
                                 "FROM read_parquet($f, hive_partitioning = false) GROUP BY split ORDER BY split",
                                 used_params("$f", params))
            meta = {**parquet_metadata(con, [path]), "split_and_active_share": shares,
                    "reads_days": p.days_read(WINDOWS.target_dts),
                    "threshold": table(["ours (training users)", "fit on users", "mean over all users (not used)",
                                        "case study (theirs, whole month)"],
                                       [(threshold.value, threshold.fitted_on_users, all_mean, 0.02338)])}
        same = (threshold.value is None and train_users == 0) or (
            threshold.value is not None and train_users == threshold.fitted_on_users
            and abs(train_mean - threshold.value) <= 1e-12 * max(1.0, abs(threshold.value)))
        return dg.MaterializeResult(metadata=meta, check_results=[
            check("threshold_fit_on_training_users", same,
                  f"stored threshold {threshold.value} fit on {threshold.fitted_on_users} users; the training users' mean "
                  f"CTR recomputed from the table: {train_mean} over {train_users} users (all users: {all_mean})"),
            check("labels_consistent", wrong == 0 and no_split == 0 and rows == feature_users == distinct,
                  f"{rows} rows for {feature_users} feature users ({distinct} distinct); {wrong} labels or CTRs that do "
                  f"not follow from the counts and the threshold; {no_split} rows without a split", violations=wrong),
        ])

    return [case_study_features, case_study_labels]
