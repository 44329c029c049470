"""Running it every day: the cohort data follows the deliveries, the models retrain on a clock.

- ``landing_sensor`` (:mod:`churn_dagster.automation.landing`) ingests each delivered day.
- ``cohort_automation`` materializes a cohort partition's data once every day it reads has landed
  (:mod:`churn_dagster.core.conditions`): the cohort whose label period just completed.
- ``daily_retrain_schedule`` is what truly runs on time: at 06:00 Asia/Shanghai it trains the eight models on
  the training window of the newest cohort whose tensors are built, writes the report and scores the newest
  window. Its run key names the cohort and the tensors' materialization, so a day without new data does not
  retrain again, and the tick says why it skipped.
"""

import dagster as dg

from churn_dagster.core.conditions import cohort_ready
from churn_dagster.core.constants import TRIGGER_TAG
from churn_dagster.core.partitions import TIMEZONE, Partitions
from churn_dagster.domain.calendar import parse_day
from churn_dagster.jobs import cohort_data_selection
from churn_dagster.studies.churn.config import epoch_cap_config

TENSORS = dg.AssetKey("sequence_tensors")


def automation_sensors() -> list[dg.SensorDefinition]:
    """The cohort automation: each cohort's data once every day it reads has landed."""
    return [dg.AutomationConditionSensorDefinition(
        "cohort_automation",
        target=cohort_data_selection,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Materializes each cohort partition's data when {cohort_ready.get_label()}.",
    )]


def retrain_schedules(p: Partitions, jobs: dict) -> list[dg.ScheduleDefinition]:
    """The daily retraining schedule of ``jobs``' training job over ``p``'s cohorts."""

    @dg.schedule(
        description="Daily at 06:00: train the eight models on the training window of the newest cohort whose "
        "tensors are built, then the evaluation report and the risk scores of the newest window. Once per new "
        "build of that cohort's tensors (the run key names it).",
        cron_schedule="0 6 * * *",
        execution_timezone=TIMEZONE,
        job=jobs["training_job"],
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def daily_retrain_schedule(context: dg.ScheduleEvaluationContext):
        known = p.cohort_partitions.get_partition_keys()
        built = [k for k in known if k in context.instance.get_materialized_partitions(TENSORS)]
        if not built:
            return dg.SkipReason("no cohort has its sequence tensors yet: a cohort's data is built once its label "
                                 "period has landed (the 21st delivered day for the first cohort)")
        newest = built[-1]
        latest = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=TENSORS, asset_partitions=[newest]), limit=1).records[0]
        window = p.training_cohorts(parse_day(newest))
        return dg.RunRequest(
            run_key=f"retrain cohort {newest} on the tensors of run {latest.run_id}",
            partition_key=newest,
            run_config=epoch_cap_config(p.settings.max_epochs),  # CHURN_MAX_EPOCHS
            tags={TRIGGER_TAG: "daily_schedule", "churn/training_window": f"{window[0]} .. {window[-1]}"},
        )

    return [daily_retrain_schedule]
