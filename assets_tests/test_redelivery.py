"""A landing day delivered again with corrected content is ingested again, and so is every cohort partition that
reads it. Before, the sensor remembered days by name: its skip reason said the day was already ingested, and the
corrected rows never reached the lake. A delivery is now its files' names, sizes and modification times."""

from __future__ import annotations

import json
import os

import dagster as dg
import pandas as pd
import pytest
from conftest import CALENDAR, resources_for

from churn_dagster.automation.landing import REDELIVERED_TAG, REDELIVERY_REASON_TAG
from churn_dagster.core.resources import NcmSourceResource
from churn_dagster.definitions import build_definitions
from churn_dagster.domain.delivery import READY_MARKER
from churn_dagster.synth.generator import generate
from churn_dagster.synth.landing import land_days


def landing_sensor(context):
    """The code location's landing sensor (built with the settings of the environment now), evaluated."""
    return build_definitions().get_sensor_def("landing_sensor")(context)

DAY3 = CALENDAR.day(3)
COHORT_DATA = ("cohort_users", "user_splits", "label_scores", "window_impressions", "sessions", "static_features",
               "kpi_features", "sequence_tensors")


def _days(first: int, last: int) -> set[str]:
    return {CALENDAR.day(dt).isoformat() for dt in range(first, last + 1)}


def _correct(folder, drop_last: int = 5) -> int:
    """Deliver the day again as the contract says (marker removed, file rewritten, marker written last), its
    impression file without its last ``drop_last`` lines; return the lines left after the header."""
    (folder / READY_MARKER).unlink()
    path = folder / "impression_data.csv"
    header, *lines = path.read_text().splitlines(keepends=True)
    path.write_text(header + "".join(lines[:-drop_last]))
    (folder / READY_MARKER).touch()
    return len(lines) - drop_last


def _tick(instance, landing, cursor=None) -> dg.SensorResult:
    return landing_sensor(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                  resources={"source": NcmSourceResource(directory=str(landing))}))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("redelivery_source")
    generate(root / "full", users=1_000, seed=4)
    return root / "full"


def test_a_changed_day_is_requested_again_with_its_reason(generated, tmp_path):
    landing = tmp_path / "landing"
    folders = land_days(generated, landing, [CALENDAR.day(dt) for dt in range(1, 6)])
    with dg.instance_for_test() as instance:
        first = _tick(instance, landing)
        assert [r.run_key for r in first.run_requests if r.job_name == "daily_ingest_job"] == [
            "delivered days 2019-11-01 .. 2019-11-05 (5 days)"]
        same = _tick(instance, landing, first.cursor)
        assert same.run_requests == [] and "their files unchanged since" in same.skip_reason.skip_message

        _correct(folders[2])
        (folders[3] / READY_MARKER).unlink()  # day 4 is being delivered again: not read until its marker is back
        marker_gone = _tick(instance, landing, same.cursor)
        (redelivery,) = marker_gone.run_requests
        assert redelivery.run_key.startswith("re-delivered days 2019-11-03 (1 day, delivery ")
        assert redelivery.tags[REDELIVERED_TAG] == "2019-11-03"
        assert redelivery.tags[REDELIVERY_REASON_TAG] == "2019-11-03: _SUCCESS, impression_data.csv changed"
        assert (redelivery.tags["dagster/asset_partition_range_start"],
                redelivery.tags["dagster/asset_partition_range_end"], redelivery.tags["churn/trigger"]) == (
            "2019-11-03", "2019-11-03", "landing")

        (folders[3] / READY_MARKER).touch()  # day 4 again, its data files as before: the marker says it is new
        stat = (folders[4] / "mlog_stats.csv").stat()  # day 5: one file rewritten later, same size
        os.utime(folders[4] / "mlog_stats.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        both = _tick(instance, landing, marker_gone.cursor)
        (again,) = both.run_requests  # days 4 and 5: one run of consecutive days
        assert again.tags[REDELIVERED_TAG] == "2019-11-04, 2019-11-05"
        assert again.tags[REDELIVERY_REASON_TAG] == ("2019-11-04: _SUCCESS changed; "
                                                     "2019-11-05: mlog_stats.csv changed")

        _correct(folders[2], drop_last=1)  # day 3 corrected a second time: a run key of its own
        second = _tick(instance, landing, both.cursor).run_requests[0]
        assert second.tags[REDELIVERED_TAG] == "2019-11-03" and second.run_key != redelivery.run_key


def test_an_earlier_cursor_of_day_names_ingests_nothing_again(generated, tmp_path):
    landing = tmp_path / "landing"
    land_days(generated, landing, [CALENDAR.day(dt) for dt in range(1, 4)])
    with dg.instance_for_test() as instance:
        old = json.dumps({"days": ["2019-11-01", "2019-11-02"], "snapshots": "", "reported": []})
        result = _tick(instance, landing, old)
        ingests = [r for r in result.run_requests if r.job_name == "daily_ingest_job"]
        assert [r.run_key for r in ingests] == ["delivered days 2019-11-03 (1 day)"]
        assert sorted(json.loads(result.cursor)["delivered"]) == ["2019-11-01", "2019-11-02", "2019-11-03"]


def test_days_delivered_with_a_gap_are_ingested_in_runs_of_consecutive_days(generated, tmp_path):
    """A range over a day not delivered yet would fail on its missing files."""
    landing = tmp_path / "landing"
    land_days(generated, landing, [CALENDAR.day(dt) for dt in (1, 2, 4)])
    with dg.instance_for_test() as instance:
        keys = [r.run_key for r in _tick(instance, landing).run_requests if r.job_name == "daily_ingest_job"]
    assert keys == ["delivered days 2019-11-01 .. 2019-11-02 (2 days)", "delivered days 2019-11-04 (1 day)"]


def test_a_re_ingested_day_rebuilds_the_cohorts_that_read_it(generated, tmp_path):
    landing = tmp_path / "landing"
    folders = land_days(generated, landing, [CALENDAR.day(dt) for dt in range(1, 22)])
    resources = resources_for(landing, tmp_path)
    defs = build_definitions(resources=resources)
    (tmp_path / "home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "home"))
    state = {"sensor": None, "automation": None}

    def sensor_tick() -> dg.SensorResult:
        result = _tick(instance, landing, state["sensor"])
        state["sensor"] = result.cursor
        for request in result.run_requests:
            ok = defs.resolve_job_def(request.job_name).execute_in_process(instance=instance, tags=request.tags)
            assert ok.success
        return result

    def automation_tick() -> dict[str, set[str]]:
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=state["automation"])
        state["automation"] = result.cursor
        requested = {a: set(result.get_requested_partitions(dg.AssetKey(a))) for a in COHORT_DATA}
        for cohort in sorted(set().union(*requested.values())):
            keys = [dg.AssetKey(a) for a, cohorts in requested.items() if cohort in cohorts]
            assert defs.resolve_job_def("cohort_features_job").execute_in_process(
                instance=instance, partition_key=cohort, asset_selection=keys).success
        return {a: c for a, c in requested.items() if c}

    sensor_tick()
    assert automation_tick()["label_scores"] == {"2019-11-01"}
    assert automation_tick() == {}
    lines = _correct(folders[2])
    (request,) = sensor_tick().run_requests
    assert request.tags[REDELIVERED_TAG] == "2019-11-03"
    raw = resources["lake"].lake.raw_day("impression_data", DAY3)
    assert len(pd.read_parquet(raw)) == lines
    # Membership reads every day up to its cohort day (cohorts 3..10: a user first seen on day 3 is no new
    # user of a later day); sessions and features read their cohort's 14 days (cohorts 1..3 hold day 3) and
    # its membership (cohorts 3..8 have their 14 days landed), through their window's impressions; the tensors of cohort 1, the one labelled,
    # follow its sessions. The splits follow the memberships rebuilt (3..10). No label period holds day 3, and
    # cohort 1's membership and split are unchanged, so no label is rebuilt.
    assert automation_tick() == {"cohort_users": _days(3, 10), "user_splits": _days(3, 10), "window_impressions": _days(1, 8),
                                 "sessions": _days(1, 8), "static_features": _days(1, 8), "kpi_features": _days(1, 8),
                                 "sequence_tensors": {"2019-11-01"}}
    assert automation_tick() == {}
    sessions = pd.read_parquet(resources["lake"].lake.cohort("sessions", CALENDAR.day(3)))
    members = pd.read_parquet(resources["lake"].lake.cohort("cohort_users", CALENDAR.day(3)))
    day3_users = set(pd.read_parquet(raw)["user_id"])
    assert set(members["user_id"]) <= day3_users and set(sessions["user_id"]) == set(members["user_id"])
