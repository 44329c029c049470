"""Bad input, one case at a time: each either fails with the file, line and column named, or is quarantined
with exact accounting (rows read = loaded + quarantined). The policy table is in docs/DATA_FORMAT.md."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest
from conftest import CALENDAR, Imp, all_days, tid, write_impressions, write_snapshots
from pipeline_helpers import ingest_folder, rows

from churn_dagster.core.resources import NcmSourceResource
from churn_dagster.domain import ncm_format as fmt
from churn_dagster.stages.cohorts.sql import cohorts
from churn_dagster.stages.features.sql import features, window
from churn_dagster.stages.ingest.sql import BadInputError, ingest

# The fixture's users and cards, as IDs of the published grammar (see conftest.tid).
U1, U2, KNOWN, STRANGER = tid("U1"), tid("U2"), tid("K"), tid("S")

GOOD = [Imp(U1, "2019-11-01 10:00:00", 1), Imp(U1, "2019-11-01 10:00:00", 2), Imp(U2, "2019-11-02 09:00:00", 1)]
HEADER = ",".join(fmt.IMPRESSIONS.header)


def _ingest_bytes(tmp_path, lake, con, payload: bytes, name: str = "impression_data.csv"):
    folder = tmp_path / "src"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(payload)
    return ingest(con, fmt.IMPRESSIONS, [folder / name], lake, CALENDAR, all_days())


def _quarantined(con, lake) -> list[dict]:
    scopes = ["unassigned/impression_data.csv", "unassigned/impression_data.csv.gz", *(d.isoformat() for d in all_days())]
    files = [f for f in (lake.quarantine("impression_data", s) for s in scopes) if f.exists()]
    return [r for f in files for r in rows(con, f)]


def _body(lines: list[str]) -> bytes:
    return ("\n".join([HEADER, *lines]) + "\n").encode()


CASES = {
    # name: (file lines after the header, trailing newline?, expected quarantine line, column, reason fragment)
    "truncated last line": ([*(r.csv_line() for r in GOOD), GOOD[0].csv_line()[:19]], False, 5, "wrong number of fields"),
    "wrong field count": ([GOOD[0].csv_line() + ",extra", *(r.csv_line() for r in GOOD)], True, 2, "wrong number of fields"),
    "non-numeric dt": ([*(r.csv_line() for r in GOOD), "NA,x1,1,1572573600000,0,0,0,0,0,0,GCJC,NA,ICHCPC"], True, 5, "dt"),
    "dt out of range": ([*(r.csv_line() for r in GOOD), "NA,0,1,1572573600000,0,0,0,0,0,0,GCJC,NA,ICHCPC"], True, 5,
                        "dt is outside the days"),
    "impressTime on another day": ([*(r.csv_line() for r in GOOD),
                                    GOOD[2].csv_line().replace("NA,2,", "NA,3,", 1)], True, 5, "Asia/Shanghai day"),
    "duplicated row": ([*(r.csv_line() for r in GOOD), GOOD[1].csv_line()], True, 5, "duplicate"),
    "malformed detail list": ([*(r.csv_line() for r in GOOD),
                               '"[{\'isZan\': \'0\', \'mlogId\'",1,3,1572573600000,1,0,0,0,0,0,GCJC,2.0,ICHCPC'], True, 5,
                              "detailMlogInfoList"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_quarantine_with_exact_accounting(tmp_path, lake, con, case):
    lines, trailing_newline, line, fragment = CASES[case]
    payload = _body(lines)
    result = _ingest_bytes(tmp_path, lake, con, payload if trailing_newline else payload.rstrip(b"\n"))
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (4, 3, 1), case
    assert result.balanced
    (bad,) = _quarantined(con, lake)
    assert bad["line"] == line
    assert fragment in f"{bad['reason']} {bad['column_name']}", bad


def test_non_utf8_bytes_are_quarantined_with_their_line(tmp_path, lake, con):
    bad = "NA,1,3,1572573600000,0,0,0,0,0,0,GCJC,NA,U\xe9".encode("latin-1")
    payload = _body([r.csv_line() for r in GOOD]) + bad + b"\n"
    result = _ingest_bytes(tmp_path, lake, con, payload)
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (4, 3, 1)
    (row,) = _quarantined(con, lake)
    assert row["line"] == 5 and row["reason"] == "the line is not valid UTF-8" and row["column_name"] == "(line)"
    assert "\\xE9" in row["content"]  # the bytes are shown, escaped


def test_crlf_and_gzip_load_every_row(tmp_path, lake, con):
    payload = _body([r.csv_line() for r in GOOD]).replace(b"\n", b"\r\n")
    result = _ingest_bytes(tmp_path, lake, con, gzip.compress(payload), "impression_data.csv.gz")
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (3, 3, 0)


def test_a_header_only_file_loads_nothing_and_says_so(tmp_path, lake, con):
    result = _ingest_bytes(tmp_path, lake, con, (HEADER + "\n").encode())
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (0, 0, 0)


@pytest.mark.parametrize(("payload", "message"), [
    (b"", r"impression_data.csv: the file is empty; expected a header line"),
    ((HEADER.replace("mlogId", "cardId") + "\n").encode(), r"line 1: unknown column\(s\) 'cardId'"),
    ((HEADER.replace(",userId", "") + "\n").encode(), r"line 1: missing column\(s\) 'userId'"),
])
def test_unreadable_files_fail_with_file_line_and_column(tmp_path, lake, con, payload, message):
    with pytest.raises(BadInputError, match=message):
        _ingest_bytes(tmp_path, lake, con, payload)


def test_a_missing_file_is_named(tmp_path):
    source = NcmSourceResource(directory=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"impression_data.csv or impression_data.csv.gz not found"):
        source.files_for(fmt.IMPRESSIONS, None)
    (tmp_path / "day=2019-11-01").mkdir()
    with pytest.raises(FileNotFoundError, match=r"none in day=... folders for 2019-11-01, 2019-11-02"):
        source.files_for(fmt.IMPRESSIONS, [CALENDAR.day(1), CALENDAR.day(2)])


def test_users_without_demographics_and_unknown_cards_are_kept_and_flagged(tmp_path, lake, con):
    src = tmp_path / "src"
    imps = [Imp(KNOWN, "2019-11-01 10:00:00"), Imp(STRANGER, "2019-11-01 11:00:00", card="GCGCGC")]
    write_impressions(src, imps)
    write_snapshots(src, [KNOWN])  # STRANGER has no demographics row; card GCGCGC has no card row
    results = ingest_folder(con, src, lake)
    assert results["impression_data"].total_loaded == 2
    for day in all_days():
        cohorts.build_user_day_activity(con, lake, day)
    cohorts.build_cohort_users(con, lake, CALENDAR, [CALENDAR.day(1)])
    window.build_window_impressions(con, lake, CALENDAR, [CALENDAR.day(1)])
    features.build_kpi_features(con, lake, CALENDAR, [CALENDAR.day(1)], publish_day_anchor=31)
    kpi = pd.read_parquet(lake.cohort("kpi_features", CALENDAR.day(1))).set_index("user_id")
    assert kpi.loc[STRANGER, "no_demographics_row"] == 1 and kpi.loc[KNOWN, "no_demographics_row"] == 0
    assert kpi.loc[STRANGER, "unknown_card_share"] == 1.0 and kpi.loc[KNOWN, "unknown_card_share"] == 0.0
    assert kpi.loc[STRANGER, "age_missing"] == 1 and pd.isna(kpi.loc[STRANGER, "age"])
