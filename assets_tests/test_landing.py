"""Day-by-day deliveries: a row delivered in the wrong day's folder is quarantined with that reason and kept, a
folder whose name is not a calendar day is reported once and skipped, and quarantined rows without a day are
never overwritten by a later run."""

from __future__ import annotations

import gzip
import json

import dagster as dg
from conftest import CALENDAR, Imp, tid, write_impressions, write_snapshots
from pipeline_helpers import rows

from churn_dagster.core.resources import NcmSourceResource
from churn_dagster.definitions import build_definitions
from churn_dagster.domain import ncm_format as fmt
from churn_dagster.domain.delivery import READY_MARKER
from churn_dagster.stages.ingest.sql import SourceFile, ingest


def landing_sensor(context):
    """The code location's landing sensor (built with the settings of the environment now), evaluated."""
    return build_definitions().get_sensor_def("landing_sensor")(context)

# The fixture's users and cards, as IDs of the published grammar (see conftest.tid).
U1, U2, U9 = tid("U1"), tid("U2"), tid("U9")

DAY2, DAY3 = CALENDAR.day(2), CALENDAR.day(3)


def _deliver(landing, day, imps, extra_lines=()):
    folder = landing / f"day={day.isoformat()}"
    write_impressions(folder, imps, extra_lines)
    (folder / READY_MARKER).touch()
    return folder / "impression_data.csv"


def test_a_row_of_another_day_is_quarantined_in_its_delivery_and_kept(tmp_path, lake, con):
    landing = tmp_path / "landing"
    stray = Imp(U9, "2019-11-03 08:00:00")  # a day-3 row inside the day-2 delivery
    day2_file = _deliver(landing, DAY2, [Imp(U1, "2019-11-02 10:00:00"), stray])
    result = ingest(con, fmt.IMPRESSIONS, [SourceFile(day2_file, DAY2)], lake, CALENDAR, [DAY2])
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (2, 1, 1)
    (row,) = rows(con, lake.quarantine("impression_data", DAY2.isoformat()))
    assert (row["line"], row["column_name"]) == (3, "dt")
    assert row["reason"] == "dt disagrees with the day= folder the file was delivered in"
    assert not lake.raw_day("impression_data", DAY3).exists()  # never loaded into a day it was not delivered for

    day3_file = _deliver(landing, DAY3, [Imp(U2, "2019-11-03 09:00:00")])
    ingest(con, fmt.IMPRESSIONS, [SourceFile(day3_file, DAY3)], lake, CALENDAR, [DAY3])
    assert len(rows(con, lake.quarantine("impression_data", DAY2.isoformat()))) == 1  # not lost by the next day
    assert [r["user_id"] for r in rows(con, lake.raw_day("impression_data", DAY3))] == [U2]


def test_the_source_resource_hands_each_day_file_with_its_day(tmp_path):
    landing = tmp_path / "landing"
    _deliver(landing, DAY2, [Imp(U1, "2019-11-02 10:00:00")])
    _deliver(landing, DAY3, [Imp(U2, "2019-11-03 10:00:00")])
    files = NcmSourceResource(directory=str(landing)).files_for(fmt.IMPRESSIONS, [DAY2, DAY3])
    assert [(f.path.parent.name, f.delivered_day) for f in files] == [("day=2019-11-02", DAY2), ("day=2019-11-03", DAY3)]


def test_unassigned_rows_survive_a_run_over_other_days(tmp_path, lake, con):
    src = tmp_path / "src"
    path = write_impressions(src, [Imp(U1, "2019-11-01 10:00:00"), Imp(U2, "2019-11-05 10:00:00")],
                             extra_lines=["NA,NA,1,1572573600000,0,0,0,0,0,0,GCHCIC,NA,ICHCJC"])
    first = ingest(con, fmt.IMPRESSIONS, [path], lake, CALENDAR, [CALENDAR.day(d) for d in (1, 2, 3)])
    second = ingest(con, fmt.IMPRESSIONS, [path], lake, CALENDAR, [CALENDAR.day(d) for d in (4, 5, 6)])
    assert first.rows_outside_run == second.rows_outside_run == 1
    (kept,) = rows(con, lake.quarantine("impression_data", "unassigned/impression_data.csv"))
    assert (kept["line"], kept["reason"]) == (4, "dt is missing")

    other = write_impressions(tmp_path / "other", [], extra_lines=["NA,NA,1,1572573600000,0,0,0,0,0,0,GCJC,NA,ICHCKC"])
    gz = other.with_suffix(".csv.gz")
    gz.write_bytes(gzip.compress(other.read_bytes()))
    ingest(con, fmt.IMPRESSIONS, [gz], lake, CALENDAR, [CALENDAR.day(7)])
    assert len(rows(con, lake.quarantine("impression_data", "unassigned/impression_data.csv"))) == 1
    assert len(rows(con, lake.quarantine("impression_data", "unassigned/impression_data.csv.gz"))) == 1


def test_a_malformed_day_folder_is_reported_once_and_skipped(tmp_path, capsys):
    landing = tmp_path / "landing"
    write_snapshots(landing)
    _deliver(landing, DAY2, [Imp(U1, "2019-11-02 10:00:00")])
    bad = landing / "day=2019-11-31"
    bad.mkdir()
    (bad / READY_MARKER).touch()
    beyond = landing / "day=2020-02-01"
    beyond.mkdir()
    (beyond / READY_MARKER).touch()
    resources = {"source": NcmSourceResource(directory=str(landing))}
    with dg.instance_for_test() as instance:
        first = landing_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        daily = [r for r in first.run_requests if r.job_name == "daily_ingest_job"]
        assert len(daily) == 1 and daily[0].tags["dagster/asset_partition_range_start"] == DAY2.isoformat()
        assert json.loads(first.cursor)["reported"] == ["day=2019-11-31", "day=2020-02-01"]
        warnings = [line for line in capsys.readouterr().err.splitlines() if "skipping the delivery folder" in line]
        assert len(warnings) == 2 and "day=2019-11-31: it is not a calendar day" in warnings[0]
        second = landing_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=first.cursor))
        assert not second.run_requests
        assert "skipping the delivery folder" not in capsys.readouterr().err
