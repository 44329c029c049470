"""The landing sensor: ingest each day as it is delivered to the source folder.

It watches for ``day=YYYY-MM-DD/_SUCCESS`` markers (the delivery contract of
:mod:`churn_dagster.domain.delivery`, the marker written last) and ingests every day not seen before, in one
run per run of consecutive days; a day delivered again with other files (name, size or modification time of
any of them) is ingested again, in a run of its own whose tags name the day and the files that changed; it
reloads the snapshot tables when their files change. Run keys and tags say which days a run ingests and why;
a tick that requests nothing says why in its skip reason. The cohort automation then rebuilds every cohort
partition that reads a re-ingested day.
"""

import hashlib
import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg

from churn_dagster.core.constants import TRIGGER_TAG, partition_range_tags
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import NcmSourceResource
from churn_dagster.domain.delivery import READY_MARKER, SNAPSHOT_FILES, changed_files, landed_days

# Run tags of a re-delivery: the days ingested again and, per day, the files that changed.
REDELIVERED_TAG = "churn/redelivered_days"
REDELIVERY_REASON_TAG = "churn/redelivery"


def _snapshot_files(folder: Path) -> list[Path]:
    return [p for f in SNAPSHOT_FILES for p in [folder / f"{f.stem}.csv", folder / f"{f.stem}.csv.gz"] if p.exists()]


def _snapshot_fingerprint(files: list[Path]) -> str:
    return json.dumps(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))


def _snapshot_request(files: list[Path], fingerprint: str) -> dg.RunRequest:
    newest = max(files, key=lambda p: p.stat().st_mtime_ns)
    changed = datetime.fromtimestamp(newest.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:8]
    return dg.RunRequest(job_name="raw_snapshots_job", run_key=f"snapshots as of {changed} ({digest})",
                         tags={TRIGGER_TAG: "landing", "churn/snapshot_files": ", ".join(p.name for p in files)})


def _runs_of_days(days: list[date]) -> list[list[date]]:
    """``days`` cut into runs of consecutive days: a run's partition range then holds only delivered days."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and day - runs[-1][-1] == timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def _span(days: list[date]) -> str:
    first, last = days[0].isoformat(), days[-1].isoformat()
    return f"{first} .. {last}" if first != last else first


def _count(days: list[date]) -> str:
    return f"{len(days)} day{'s' if len(days) > 1 else ''}"


def _ingest_request(days: list[date]) -> dg.RunRequest:
    return dg.RunRequest(job_name="daily_ingest_job", run_key=f"delivered days {_span(days)} ({_count(days)})",
                         tags={**partition_range_tags(days[0].isoformat(), days[-1].isoformat()),
                               TRIGGER_TAG: "landing"})


def _redelivery_request(days: list[date], changes: dict[date, list[str]], now: dict) -> dg.RunRequest:
    """Days delivered again with other files: re-ingested, with the files that changed. The run key carries
    a digest of the new deliveries, so that a day corrected twice is ingested twice (Dagster runs a sensor's
    run key once)."""
    digest = hashlib.sha256(json.dumps([now[d.isoformat()] for d in days]).encode()).hexdigest()[:8]
    why = "; ".join(f"{d.isoformat()}: {', '.join(changes[d])} changed" for d in days)
    return dg.RunRequest(job_name="daily_ingest_job", run_key=f"re-delivered days {_span(days)} ({_count(days)}, delivery {digest})",
                         tags={**partition_range_tags(days[0].isoformat(), days[-1].isoformat()),
                               TRIGGER_TAG: "landing", REDELIVERED_TAG: ", ".join(d.isoformat() for d in days),
                               REDELIVERY_REASON_TAG: why})


def _state(cursor: str | None, deliveries) -> dict:
    """The cursor: the delivery of each day last requested (``delivered``: its fingerprint), the snapshot
    files' fingerprint and the folders already reported. A cursor of the days' names alone (``days``, as
    earlier versions wrote it) takes the deliveries there now as the ones ingested."""
    state = {"delivered": {}, "snapshots": "", "reported": [], **(json.loads(cursor) if cursor else {})}
    for name in state.pop("days", []):
        state["delivered"].setdefault(name, _listed(deliveries.fingerprints.get(date.fromisoformat(name), ())))
    return state


def _listed(fingerprint) -> list:
    return [list(f) for f in fingerprint]


def _report_strays(calendar, context, state: dict, deliveries, known: set[str]) -> None:
    """Log, once per name, the day= folders that are skipped: not a date, or a day outside the calendar."""
    outside = [f"day={d.isoformat()}" for d in deliveries.days if d.isoformat() not in known]
    for name in [*deliveries.malformed, *outside]:
        if name not in state["reported"]:
            why = "is not a calendar day (expected day=YYYY-MM-DD)" if name in deliveries.malformed else (
                f"is outside the configured days {calendar.first_day} .. {calendar.last_day}")
            context.log.warning(f"skipping the delivery folder {name}: it {why}")
            state["reported"].append(name)


def landing_sensors(p: Partitions, jobs: dict) -> list[dg.SensorDefinition]:
    """The landing sensor over ``p``'s days, launching ``jobs``' ingest jobs."""

    @dg.sensor(
        description=f"Ingests each day delivered to the source folder as day=YYYY-MM-DD/ with a {READY_MARKER} marker, "
        "again when the day is re-delivered (its files' names, sizes or modification times change), "
        "and reloads the snapshot tables when their files change. A folder whose name is not a day of the calendar is "
        "reported once and skipped.",
        jobs=[jobs["daily_ingest_job"], jobs["raw_snapshots_job"]],
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def landing_sensor(context: dg.SensorEvaluationContext, source: NcmSourceResource):
        folder = Path(source.directory)
        known = set(p.day_partitions.get_partition_keys())
        deliveries = landed_days(folder)
        state = _state(context.cursor, deliveries)
        _report_strays(p.calendar, context, state, deliveries, known)
        delivered = [d for d in deliveries.days if d.isoformat() in known]
        if not delivered:
            return dg.SensorResult(skip_reason=f"no delivered day in {folder} (looking for day=YYYY-MM-DD/{READY_MARKER})",
                                   cursor=json.dumps(state))
        requests = []
        snapshots = _snapshot_files(folder)
        fingerprint = _snapshot_fingerprint(snapshots) if snapshots else ""
        if fingerprint and fingerprint != state["snapshots"]:
            requests.append(_snapshot_request(snapshots, fingerprint))
        now = {d.isoformat(): _listed(deliveries.fingerprints[d]) for d in delivered}
        before = state["delivered"]
        new = [d for d in delivered if d.isoformat() not in before]
        changes = {d: changed_files(tuple(map(tuple, before[d.isoformat()])), deliveries.fingerprints[d])
                   for d in delivered if d.isoformat() in before and before[d.isoformat()] != now[d.isoformat()]}
        requests += [_ingest_request(days) for days in _runs_of_days(new)]
        requests += [_redelivery_request(days, changes, now) for days in _runs_of_days(list(changes))]
        state.update(delivered={**before, **now}, snapshots=fingerprint)
        skip = None if requests else (f"no new delivery: the {len(delivered)} delivered days up to {max(delivered)} are "
                                      "ingested as delivered (their files unchanged since) and the snapshot files are "
                                      "unchanged")
        return dg.SensorResult(run_requests=requests, skip_reason=skip, cursor=json.dumps(state))

    return [landing_sensor]
