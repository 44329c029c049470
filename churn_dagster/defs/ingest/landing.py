"""The landing sensor: ingest each day as it is delivered to the source folder.

It watches for ``day=YYYY-MM-DD/_SUCCESS`` markers (the delivery contract of
:mod:`churn_dagster.domain.delivery`, the marker written last) and ingests every day not seen before, in one
run per batch of days; it reloads the snapshot tables when their files change. Run keys and tags say which
days a run ingests and why; a tick that requests nothing says why in its skip reason.
"""

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from churn_dagster.defs.constants import TRIGGER_TAG, partition_range_tags
from churn_dagster.defs.jobs import daily_ingest_job, raw_snapshots_job
from churn_dagster.defs.partitions import CALENDAR, day_partitions
from churn_dagster.defs.resources import NcmSourceResource
from churn_dagster.domain.delivery import READY_MARKER, SNAPSHOT_FILES, landed_days


def _snapshot_files(folder: Path) -> list[Path]:
    return [p for f in SNAPSHOT_FILES for p in [folder / f"{f.stem}.csv", folder / f"{f.stem}.csv.gz"] if p.exists()]


def _snapshot_fingerprint(files: list[Path]) -> str:
    return json.dumps(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))


def _snapshot_request(files: list[Path], fingerprint: str) -> dg.RunRequest:
    newest = max(files, key=lambda p: p.stat().st_mtime_ns)
    changed = datetime.fromtimestamp(newest.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:8]
    return dg.RunRequest(job_name=raw_snapshots_job.name, run_key=f"snapshots as of {changed} ({digest})",
                         tags={TRIGGER_TAG: "landing", "churn/snapshot_files": ", ".join(p.name for p in files)})


def _ingest_request(new: list) -> dg.RunRequest:
    first, last = min(new).isoformat(), max(new).isoformat()
    days = f"{first} .. {last}" if first != last else first
    return dg.RunRequest(job_name=daily_ingest_job.name, run_key=f"delivered days {days} ({len(new)} days)",
                         tags={**partition_range_tags(first, last), TRIGGER_TAG: "landing"})


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
    description=f"Ingests each day delivered to the source folder as day=YYYY-MM-DD/ with a {READY_MARKER} marker, "
    "and reloads the snapshot tables when their files change. A folder whose name is not a day of the calendar is "
    "reported once and skipped.",
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
    snapshots = _snapshot_files(folder)
    fingerprint = _snapshot_fingerprint(snapshots) if snapshots else ""
    if fingerprint and fingerprint != state["snapshots"]:
        requests.append(_snapshot_request(snapshots, fingerprint))
    new = [d for d in delivered if d.isoformat() not in state["days"]]
    if new:
        requests.append(_ingest_request(new))
    state.update(days=sorted({*state["days"], *(d.isoformat() for d in new)}), snapshots=fingerprint)
    skip = None if requests else (f"no new delivery: the {len(delivered)} delivered days up to {max(delivered)} are "
                                  "ingested and the snapshot files are unchanged")
    return dg.SensorResult(run_requests=requests, skip_reason=skip, cursor=json.dumps(state))


sensors = [landing_sensor]
