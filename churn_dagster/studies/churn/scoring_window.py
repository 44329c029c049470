"""The newest observation window as of each labelled cohort: its users' features and unlabelled tensors.

Scoring partition X belongs to the day X's label period ends, D = X + observation + label - 1: the users to
score are those first seen on X + label_days, whose observation window ends on D. Their label period lies in
the future, so they have no partition among the labelled cohorts; ``scoring_window`` builds their membership,
window impressions, sessions, features and unlabelled tensors with the same transforms into ``scoring/``, reading exactly the days
its partition mappings declare.
"""

import dagster as dg

from churn_dagster.core.constants import OWNERS
from churn_dagster.core.metadata import check, parquet_metadata
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.stages.cohorts.sql import cohorts as cohort_sql
from churn_dagster.stages.features.sql import features as feature_sql
from churn_dagster.stages.features.sql import sessions as session_sql
from churn_dagster.stages.features.sql import window as window_sql
from churn_dagster.stages.tensors.sql import tensors as tensor_build


def scoring_window_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """``scoring_window``."""

    @dg.asset(
        description="Membership, sessions, static and KPI features and unlabelled tensors of the users first seen on "
        "the partition's day + label days, whose observation window ends the day the partition's label period ends; "
        "built by the cohort transforms into scoring/. Values are raw: each model imputes and scales them with its "
        "own training statistics.",
        group_name="scoring",
        kinds={"duckdb", "parquet", "numpy"},
        owners=OWNERS,
        code_version="4",  # 4: no swipe entry after the window; leaky columns behind the setting
        partitions_def=p.cohort_partitions,
        deps=[
            dg.AssetDep("user_day_activity", partition_mapping=p.scoring_membership_days),
            dg.AssetDep("raw_impressions", partition_mapping=p.scoring_observation_days),
            dg.AssetDep("raw_mlog_stats", partition_mapping=p.scoring_observation_days),
            dg.AssetDep("raw_creator_stats", partition_mapping=p.scoring_observation_days),
            "raw_user_demographics", "raw_mlog_demographics", "raw_creator_demographics",
        ],
        check_specs=[dg.AssetCheckSpec("features_cover_window", asset="scoring_window", blocking=True,
                                       description="Every window user has static and KPI features and a tensor row.")],
    )
    def scoring_window(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        window = p.scored_cohort(parse_day(context.partition_key))
        area = lake.lake.scoring()
        with lake.connect() as con:
            users = cohort_sql.build_cohort_users(con, area, p.calendar, [window])[window]
            window_sql.build_window_impressions(con, area, p.calendar, [window])
            n_sessions = session_sql.build_sessions(con, area, p.calendar, [window], features.session_gap_minutes)[window]
            static = feature_sql.build_static_features(con, area, p.calendar, [window], features.use_leaky_columns)[window]
            kpi = feature_sql.build_kpi_features(con, area, p.calendar, [window], features.publish_day_anchor,
                                                 features.use_leaky_columns, features.use_content_stats)[window]
            summary = tensor_build.build_tensors(con, area, window, features.max_sessions, labelled=False)
            meta = parquet_metadata(con, [area.cohort("kpi_features", window)])
        days = p.calendar.observation_dts(window)
        meta.update({
            "scored_cohort": dg.MetadataValue.text(window.isoformat()),
            "observation_days": dg.MetadataValue.text(f"{p.calendar.day(days[0])} .. {p.calendar.day(days[-1])}"),
            "users": dg.MetadataValue.int(users),
            "sessions": dg.MetadataValue.int(n_sessions),
            **features.metadata(p.calendar),
        })
        if users == 0:
            meta["note"] = dg.MetadataValue.text(f"no user was first seen on {window}: the window is empty")
        covered = users == static == kpi == summary.users
        return dg.MaterializeResult(metadata=meta, check_results=[
            check("features_cover_window", covered, f"{users} users, {static} static rows, {kpi} KPI rows, "
                  f"{summary.users} tensor rows"),
        ])

    return [scoring_window]
