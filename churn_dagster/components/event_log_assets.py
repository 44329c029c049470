"""The assets of one event-log instance: the canonical events; for the churn study the cohorts, the five
churn families, the report and the risk scores; for the case study, session continuation and the trends their data
and models (``event_log_case_study.py``, ``event_log_continuation.py``, ``event_log_trends.py``); under the
instance's key prefix and group.

Thin wiring, light to load (the bodies, and with them torch and scikit-learn, are imported when a step
runs): each body calls the stage (``stages/events``) or the study (``studies/churn/event_logs.py``),
both plain of Dagster but for the training kit. Cohort assets are built by one run whatever the number of
partitions asked for, so a backfill of 78 weekly cohorts reads the events once.
"""


from datetime import timedelta

import dagster as dg

from churn_dagster.components.event_log_case_study import case_study_assets
from churn_dagster.components.event_log_continuation import continuation_assets
from churn_dagster.components.event_log_spec import EventLogSpec, InstancePaths
from churn_dagster.components.event_log_trends import trend_assets
from churn_dagster.core.constants import OWNERS
from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.studies.churn.config import CONFIG_CLASSES

CODE_VERSION = "1"
FAMILIES = ("rfm_gbm", "logreg", "xgboost", "lstm", "hybrid_lstm")


def partitions(spec: EventLogSpec) -> dg.TimeWindowPartitionsDefinition:
    """One partition per cohort: a day, or a week starting on the weekday of ``windows.start``; a log with an
    ``end`` stops at the cohort holding that day."""
    w = spec.windows
    if w.grain == "day":
        end = (spec.end + timedelta(days=1)).isoformat() if spec.end else None
        return dg.DailyPartitionsDefinition(start_date=w.start.isoformat(), end_date=end)
    end = (spec.end + timedelta(days=7)).isoformat() if spec.end else None
    return dg.WeeklyPartitionsDefinition(start_date=w.start.isoformat(), day_offset=w.start.isoweekday() % 7,
                                         end_date=end)


def _reach(spec: EventLogSpec) -> int:
    """How many partitions back a model partition reads: its training window and the out-of-time cohorts."""
    w = spec.windows
    # The newest out-of-time cohort starts ceil(L / grain) partitions before the model's (Windows.out_of_time).
    lag = -(-w.label_days // w.grain_days)
    return lag + w.training_cohorts - 1


def event_log_definitions(spec: EventLogSpec) -> dg.Definitions:
    name, parts = spec.name, partitions(spec)
    key = lambda *path: dg.AssetKey([name, *path])  # noqa: E731
    common = dict(group_name=name, owners=OWNERS, code_version=CODE_VERSION)

    @dg.asset(key=key("events"), kinds={"duckdb", "parquet", spec.source.kind}, **common,
              description=f"Every record of {spec.source.label()} loaded once (typed, with its local day) or "
                          "quarantined with its file, line, column and reason.",
              check_specs=[dg.AssetCheckSpec("records_accounted", asset=key("events"), blocking=True,
                                             description="records counted in the source = loaded + quarantined"),
                           dg.AssetCheckSpec("quarantine_share", asset=key("events"), blocking=True,
                                             description=f"at most {spec.max_quarantine_share:.1%} quarantined")])
    def events(context: dg.AssetExecutionContext, lake: LakeResource):
        from churn_dagster.components.event_log_bodies import load_events_body

        return load_events_body(context, spec, lake, InstancePaths(lake.data_dir, name))

    users = []
    if spec.users is not None:
        @dg.asset(key=key("users"), kinds={"duckdb", "parquet"}, **common,
                  description="The users table: one row per user with its signup time and attributes, or "
                              "quarantined with file, line, column and reason.",
                  check_specs=[dg.AssetCheckSpec("users_accounted", asset=key("users"), blocking=True,
                                                 description="rows counted in the source = loaded + quarantined")])
        def users_table(context: dg.AssetExecutionContext, lake: LakeResource):
            from churn_dagster.components.event_log_bodies import load_users_body

            return load_users_body(context, spec, lake, InstancePaths(lake.data_dir, name))

        users = [users_table]

    @dg.asset(key=key("cohorts"), deps=[key("events"), *(u.key for u in users)], kinds={"duckdb", "parquet", "numpy"}, **common,
              partitions_def=parts, backfill_policy=dg.BackfillPolicy.single_run(),
              description="Each cohort's users (first event in the cohort's day or week): static features of "
                          "their observation window, label-period components once the labels close, split, "
                          "and daily sequences for the networks.",
              check_specs=[dg.AssetCheckSpec("cohorts_consistent", asset=key("cohorts"), blocking=True,
                                             description="features, labels and sequences hold the same users")])
    def cohorts(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        from churn_dagster.components.event_log_bodies import build_cohorts_body

        return build_cohorts_body(context, spec, lake, features, InstancePaths(lake.data_dir, name))

    window = dg.TimeWindowPartitionMapping(start_offset=-_reach(spec), end_offset=0,
                                           allow_nonexistent_upstream_partitions=True)

    def model_asset(family: str):
        config_class = CONFIG_CLASSES["xgboost" if family == "rfm_gbm" else family]
        asset_key = key(f"churn_{family}")

        @dg.asset(key=asset_key, ins={"cohorts": dg.AssetIn(key("cohorts"), partition_mapping=window,
                                                          dagster_type=dg.Nothing)},
                  kinds={"python", "pytorch" if "lstm" in family else "xgboost" if "xgb" in family or family ==
                         "rfm_gbm" else "scikit-learn", "mlflow"}, pool="gpu", partitions_def=parts, **common,
                  description=(f"{family} churn and level models trained on the partition's labelled window "
                               "(random and out-of-time protocols), registered under the evidence and champion rules."),
                  check_specs=[dg.AssetCheckSpec("model_sane", asset=asset_key, blocking=True,
                                                 description="finite weights and validation probabilities")])
        def model(context: dg.AssetExecutionContext, config: config_class, lake: LakeResource,
                  mlflow: MlflowResource):
            from churn_dagster.components.event_log_bodies import train_body

            yield from train_body(context, spec, family, config, lake, mlflow, InstancePaths(lake.data_dir, name))

        return model

    models = [model_asset(f) for f in FAMILIES]

    @dg.asset(key=key("churn_report"), deps=[m.key for m in models], kinds={"python", "mlflow"}, **common,
              partitions_def=parts,
              description="Every family's validation and test AUC for churn and level, beside the reference row, "
                          "with the gain over it on the same test users and its bootstrap interval.",
              check_specs=[dg.AssetCheckSpec("report_complete", asset=key("churn_report"), blocking=False,
                                             description="every family trained on this partition")])
    def report(context: dg.AssetExecutionContext, lake: LakeResource):
        from churn_dagster.components.event_log_bodies import report_body

        return report_body(context, spec, FAMILIES, InstancePaths(lake.data_dir, name))

    @dg.asset(key=key("churn_scores"), deps=[key("cohorts"), key("churn_report")], kinds={"python", "parquet"},
              **common, partitions_def=parts,
              description="Churn risk and level of the partition cohort's users from the best champions whose "
                          "labels had closed when its observation window did; to Parquet"
                          + (f" and to PostgreSQL table {spec.scores_table.table}" if spec.scores_table else "") + ".",
              check_specs=[dg.AssetCheckSpec("scores_valid", asset=key("churn_scores"), blocking=True,
                                             description="one score per user, probabilities in [0, 1]")])
    def scores(context: dg.AssetExecutionContext, lake: LakeResource, mlflow: MlflowResource):
        from churn_dagster.components.event_log_bodies import scores_body

        return scores_body(context, spec, FAMILIES, lake, mlflow, InstancePaths(lake.data_dir, name))

    churn = [cohorts, *models, report, scores] if "churn" in spec.studies else []
    case_study = (case_study_assets(spec, key, common, [key("events"), *(u.key for u in users)])
                  if "case_study" in spec.studies else [])
    continuation = continuation_assets(spec, key, common, [key("events")]) if "continuation" in spec.studies else []
    trends = (trend_assets(spec, key, common, [key("events"), *(u.key for u in users)])
              if "trends" in spec.studies else [])
    return dg.Definitions(assets=[events, *users, *churn, *case_study, *continuation, *trends])

