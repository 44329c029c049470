"""The DIGMN trend labels of each cohort whose two periods fit in the data (first period versus second)."""

import dagster as dg
from pydantic import Field

from churn_dagster.core import checks
from churn_dagster.core.asset_attributes import DUCKDB_PARQUET
from churn_dagster.core.constants import OWNERS
from churn_dagster.core.metadata import add_partition_metadata, check, schema_metadata, table
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.storage.duck import literal_paths
from churn_dagster.studies.trends.partitions import TrendPartitions
from churn_dagster.studies.trends.sql.trends import DAY_TREND_CLASSES, TrendSettings, build_trend_labels

# The shares the DIGMN paper reports on LinkedIn (about 2:2:1 for the day-level task, 3:2 for the session
# level), shown beside ours: our users are new, theirs established, so ours decrease far more often.
PAPER_DAY_SHARES = {"decrease": 0.4, "same": 0.4, "increase": 0.2}
PAPER_SESSION_SHARES = {"not_decrease": 0.6, "decrease": 0.4}


class TrendLabelConfig(dg.Config):
    median_filter: bool = Field(
        default=True, description="The paper's filter: keep the users with at least the cohort's median number of "
        "sessions in the first period (the others stay in the file with kept_by_filter false).")


def trend_label_assets(t: TrendPartitions) -> list[dg.AssetsDefinition]:
    """``trend_labels``."""
    p = t.graph

    @dg.asset(
        description=f"Per user of a cohort: active days and sessions per day in the first {t.windows.first_period_days} "
        f"days from the cohort day and in the {t.windows.second_period_days} after, the day-level trend (0 decrease, "
        "1 same, 2 increase of active days per day) and the session-level trend (1 when sessions per day decrease), and "
        "whether the paper's median filter keeps the user. Only the cohorts whose two periods fit in the data.",
        group_name="trends",
        kinds=set(DUCKDB_PARQUET),
        owners=OWNERS,
        code_version="1",
        partitions_def=t.partitions,
        deps=["cohort_users", dg.AssetDep("raw_impressions", partition_mapping=t.days)],
        check_specs=[
            dg.AssetCheckSpec("one_row_per_cohort_user", asset="trend_labels", blocking=True),
            dg.AssetCheckSpec("classes_valid", asset="trend_labels", blocking=True,
                              description="day_trend in 0..2 and session_trend in 0..1 for every user."),
        ],
    )
    def trend_labels(context: dg.AssetExecutionContext, config: TrendLabelConfig, lake: LakeResource,
                     features: FeatureSettingsResource) -> dg.MaterializeResult:
        cohorts = [parse_day(context.partition_key)]
        settings = TrendSettings(t.windows.first_period_days, t.windows.second_period_days, config.median_filter)
        with lake.connect() as con:
            summaries = build_trend_labels(con, lake.lake, p.calendar, cohorts, settings, features.session_gap_minutes)
            out = checks.lake_paths(lake.lake, "trend_labels", cohorts)
            users = checks.lake_paths(lake.lake, "cohort_users", cohorts)

            def shares(key, _path):
                summary = summaries[parse_day(key)]
                return {
                    "kept_by_filter": dg.MetadataValue.int(summary.kept),
                    "first_period_sessions_median": dg.MetadataValue.float(float(summary.first_sessions_median or 0)),
                    "day_trend_shares": table(["class", "ours (kept users)", "paper (LinkedIn)"], [
                        (c, summary.day_trend_shares[c], PAPER_DAY_SHARES[c]) for c in DAY_TREND_CLASSES]),
                    "session_trend_shares": table(["class", "ours (kept users)", "paper (LinkedIn)"], [
                        (c, summary.session_trend_shares[c], PAPER_SESSION_SHARES[c]) for c in PAPER_SESSION_SHARES]),
                }

            add_partition_metadata(context, con, {context.partition_key: out[0]}, shares)
            bad = con.execute("SELECT count_if(day_trend NOT IN (0, 1, 2) OR session_trend NOT IN (0, 1)) "
                              "FROM read_parquet($f, hive_partitioning = false)", {"f": literal_paths(out)}).fetchone()[0]
            results = [checks.one_row_per_cohort_user(con, out, users),
                       check("classes_valid", bad == 0, f"{bad} users with a class outside the tasks' classes")]
            meta = {**schema_metadata(con, out), "settings": dg.MetadataValue.json(
                {"first_period_days": settings.first_period_days, "second_period_days": settings.second_period_days,
                 "median_filter": settings.median_filter})}
        return dg.MaterializeResult(metadata=meta, check_results=results)

    return [trend_labels]
