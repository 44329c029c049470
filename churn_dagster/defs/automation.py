"""Running it every day: a sensor that ingests each delivered day, and a daily schedule that retrains.

- ``landing_sensor`` watches the source folder for ``day=YYYY-MM-DD/_SUCCESS`` markers (written last by the
  delivery) and ingests every day not seen before, in one run per batch of days; it reloads the snapshot
  tables when their files change.
- ``daily_retrain_schedule`` fires once a day. For the newest delivered day D it ingests the raw partitions
  that are still missing (and D itself, idempotently) and tags the run with the cohort whose label period
  has just completed, D - 20 days.
- ``retrain_after_ingest`` follows that run: when it succeeds, it launches ``daily_retrain_job`` for that
  cohort partition, which also retrains the models on the rolling set of cohorts, rewrites the report and
  scores the newest observation window. Chaining on success keeps the order without a fixed delay.
"""

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from churn_dagster.defs.jobs import daily_ingest_job, daily_retrain_job, raw_snapshots_job
from churn_dagster.defs.model_assets import FAMILIES, model_name
from churn_dagster.defs.partitions import CALENDAR, TIMEZONE, cohort_partitions, day_partitions
from churn_dagster.defs.resources import NcmSourceResource
from churn_dagster.settings import settings_from_env
from churn_dagster.synth.landing import READY_MARKER, SNAPSHOT_FILES, landed_days

RETRAIN_TAG = "churn/retrain_cohort"


def _range_request(job: str, days: list[date], run_key: str, tags: dict | None = None) -> dg.RunRequest:
    return dg.RunRequest(
        job_name=job,
        run_key=run_key,
        tags={ASSET_PARTITION_RANGE_START_TAG: min(days).isoformat(), ASSET_PARTITION_RANGE_END_TAG: max(days).isoformat(),
              **(tags or {})},
    )


def _snapshot_fingerprint(folder: Path) -> str:
    stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for f in SNAPSHOT_FILES
             for p in [folder / f"{f.stem}.csv", folder / f"{f.stem}.csv.gz"] if p.exists()]
    return json.dumps(sorted(stats))


def _report_strays(context, state: dict, deliveries, known: set[str]) -> None:
    """Log, once per name, the day= folders that are skipped: not a date, or a day outside the calendar."""
    outside = [f"day={d.isoformat()}" for d in deliveries.days if d.isoformat() not in known]
    for name in [*deliveries.malformed, *outside]:
        if name not in state["reported"]:
            why = "is not a calendar day (expected day=YYYY-MM-DD)" if name in deliveries.malformed else (
                f"is outside the configured days {CALENDAR.first_day} .. {CALENDAR.last_day}")
            context.log.warning(f"skipping the delivery folder {name}: it {why}")
            state["reported"].append(name)


@dg.sensor(
    description=f"Ingests each day delivered to the source folder as day=YYYY-MM-DD/ with a {READY_MARKER} marker. "
    "A folder whose name is not a day of the calendar is reported once and skipped.",
    jobs=[daily_ingest_job, raw_snapshots_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def landing_sensor(context: dg.SensorEvaluationContext, source: NcmSourceResource):
    folder = Path(source.directory)
    state = {"days": [], "snapshots": "", "reported": [], **(json.loads(context.cursor) if context.cursor else {})}
    known = set(day_partitions.get_partition_keys())
    deliveries = landed_days(folder)
    _report_strays(context, state, deliveries, known)
    delivered = [d for d in deliveries.days if d.isoformat() in known]
    if not delivered:
        return dg.SensorResult(skip_reason=f"no delivered day in {folder} (looking for day=YYYY-MM-DD/{READY_MARKER})",
                               cursor=json.dumps(state))
    requests = []
    fingerprint = _snapshot_fingerprint(folder)
    if fingerprint and fingerprint != state["snapshots"]:
        digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
        requests.append(dg.RunRequest(job_name=raw_snapshots_job.name, run_key=f"snapshots-{digest}"))
    new = [d for d in delivered if d.isoformat() not in state["days"]]
    if new:
        requests.append(_range_request(daily_ingest_job.name, new, f"landed-{min(new)}-{max(new)}",
                                       {"churn/trigger": "landing"}))
    state.update(days=sorted({*state["days"], *(d.isoformat() for d in new)}), snapshots=fingerprint)
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(state))


def retrain_run_config() -> dict:
    """``CHURN_MAX_EPOCHS`` optionally caps the sequence models' epochs in the daily retrain."""
    max_epochs = settings_from_env().max_epochs
    if max_epochs is None:
        return {}
    return {"ops": {model_name(f, t): {"config": {"epochs": max_epochs}} for f in FAMILIES if "lstm" in f
                    for t in ("binary", "level")}}


@dg.schedule(
    description="Daily: ingest the newest delivered day (and any missing one), then retrain for the cohort whose "
    "label period has just completed (see retrain_after_ingest).",
    cron_schedule="0 6 * * *",
    execution_timezone=TIMEZONE,
    job=daily_ingest_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_retrain_schedule(context: dg.ScheduleEvaluationContext, source: NcmSourceResource):
    delivered = landed_days(Path(source.directory)).days or [
        d for d in map(CALENDAR.day, range(1, CALENDAR.num_days + 1))
    ]
    delivered = [d for d in delivered if d <= CALENDAR.last_day]
    newest = max(delivered)
    ingested = context.instance.get_materialized_partitions(dg.AssetKey("raw_impressions"))
    missing = [d for d in delivered if d.isoformat() not in ingested] or [newest]
    cohort = newest - timedelta(days=CALENDAR.observation_days + CALENDAR.label_days - 1)
    tags = {"churn/trigger": "daily_schedule"}
    if cohort.isoformat() in cohort_partitions.get_partition_keys():
        tags[RETRAIN_TAG] = cohort.isoformat()
    else:
        context.log.info(f"newest day {newest}: no cohort has a complete label period yet; ingesting only")
    tick = context.scheduled_execution_time or newest
    return _range_request(daily_ingest_job.name, [min(missing), newest], f"daily-{tick:%Y-%m-%d}-{newest}", tags)


@dg.run_status_sensor(
    description="When a scheduled ingest tagged with a cohort succeeds, retrain on that cohort partition.",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[daily_ingest_job],
    request_job=daily_retrain_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def retrain_after_ingest(context: dg.RunStatusSensorContext):
    cohort = context.dagster_run.tags.get(RETRAIN_TAG)
    if cohort is None:
        return dg.SkipReason(f"run {context.dagster_run.run_id} carries no {RETRAIN_TAG} tag")
    return dg.RunRequest(
        run_key=f"retrain-{cohort}-{context.dagster_run.run_id}",
        partition_key=cohort,
        run_config=retrain_run_config(),
        tags={"churn/trigger": "daily_schedule", RETRAIN_TAG: cohort},
    )


schedules = [daily_retrain_schedule]
sensors = [landing_sensor, retrain_after_ingest]
