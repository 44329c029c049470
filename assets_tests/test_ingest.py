"""Reading the published format: quarantine with line numbers and exact accounting, header rules, and the
real 10,000-row heads."""

from __future__ import annotations

import gzip
import shutil

import pytest
from conftest import CALENDAR, Imp, all_days, require_real_head, tid, write_impressions
from pipeline_helpers import ingest_folder, rows

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.stages.ingest.sql import BadInputError, ingest

# The fixture's users and cards, as IDs of the published grammar (see conftest.tid).
U1, U2 = tid("U1"), tid("U2")

GOOD = [
    Imp(U1, "2019-11-01 10:00:00", 1),
    Imp(U1, "2019-11-01 10:00:00", 2, click=True, view_time=12.340000000000002),
    Imp(U2, "2019-11-03 23:59:59", 1),
]


def _quarantine(con, lake, scope):
    return rows(con, lake.quarantine("impression_data", scope), "ORDER BY line")


def test_bad_rows_are_quarantined_with_line_and_reason(tmp_path, lake, con):
    src = tmp_path / "src"
    duplicate = GOOD[0].csv_line()
    wrong_day = GOOD[0].csv_line().replace("NA,1,", "NA,2,", 1)  # impressTime is on dt 1
    write_impressions(src, GOOD, extra_lines=[
        "NA,abc,1,1572573600000,0,0,0,0,0,0,GCHCIC,NA,ICHCJC",  # line 5: dt not a number
        "NA,1,1",  # line 6: too few fields
        duplicate,  # line 7: copy of line 2
        wrong_day,  # line 8
        "NA,31,1,1575129600000,0,0,0,0,0,0,GCHCIC,NA,ICHCKC",  # line 9: dt beyond the 30 days
        '"[{\'isZan\': \'0\'}]",1,1,1572573601000,1,0,0,0,0,0,GCHCIC,3.5,ICHCLC',  # line 10: list without keys
        "NA,1,2,1572573602000,2,0,0,0,0,0,GCHCIC,NA,ICHCMC",  # line 11: isClick not 0/1
    ])
    result = ingest(con, fmt.IMPRESSIONS, [src / "impression_data.csv"], lake, CALENDAR, all_days())

    assert result.rows_read == 10
    assert result.total_loaded == 3
    assert result.rows_quarantined == 7
    assert result.balanced
    unassigned = {r["line"]: r for r in _quarantine(con, lake, "unassigned/impression_data.csv")}
    assert sorted(unassigned) == [5, 6, 9]  # no usable day: dt unreadable, the line broken, dt out of range
    assert unassigned[5]["column_name"] == "dt" and unassigned[5]["reason"] == "dt is not a plain base-10 integer of 32 bits"
    assert "abc" in unassigned[5]["content"]
    assert unassigned[6]["reason"] == "wrong number of fields (expected 13)" and unassigned[6]["column_name"] == "(line)"
    assert unassigned[9]["reason"] == "dt is outside the days of the data"
    day1 = {r["line"]: r for r in _quarantine(con, lake, "2019-11-01")}
    assert sorted(day1) == [7, 10, 11]
    assert day1[7]["reason"].startswith("duplicate") and day1[10]["column_name"] == "detailMlogInfoList"
    assert (day1[11]["column_name"], day1[11]["reason"]) == ("isClick", "isClick is not 0 or 1")
    day2 = _quarantine(con, lake, "2019-11-02")
    assert [(r["line"], r["reason"]) for r in day2] == [(8, "impressTime is not on the Asia/Shanghai day dt")]
    assert result.quarantined_by_reason["duplicate of an identical row, which was loaded once"] == 1


def test_conflicting_rows_are_all_held_back(tmp_path, lake, con):
    src = tmp_path / "src"
    conflict = GOOD[0].csv_line().replace(",GCHCIC,NA,ICHCHC", ",GCHCIC,5.0,ICHCHC").replace(",0,0,0,0,0,0,", ",1,0,0,0,0,0,", 1)
    write_impressions(src, GOOD, extra_lines=[conflict])
    result = ingest(con, fmt.IMPRESSIONS, [src / "impression_data.csv"], lake, CALENDAR, all_days())
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (4, 2, 2)
    assert [r["line"] for r in _quarantine(con, lake, "2019-11-01")] == [2, 5]


def test_a_single_day_run_counts_other_days_as_outside(tmp_path, lake, con):
    src = tmp_path / "src"
    write_impressions(src, GOOD)
    result = ingest(con, fmt.IMPRESSIONS, [src / "impression_data.csv"], lake, CALENDAR, [CALENDAR.day(3)])
    assert (result.rows_read, result.total_loaded, result.rows_outside_run) == (3, 1, 2)
    assert not lake.raw_day("impression_data", CALENDAR.day(1)).exists()


def test_rerun_replaces_a_partition_exactly(tmp_path, lake, con):
    src = tmp_path / "src"
    write_impressions(src, GOOD)
    ingest(con, fmt.IMPRESSIONS, [src / "impression_data.csv"], lake, CALENDAR, all_days())
    first = lake.raw_day("impression_data", CALENDAR.day(1)).read_bytes()
    write_impressions(src, GOOD[:1])
    ingest(con, fmt.IMPRESSIONS, [src / "impression_data.csv"], lake, CALENDAR, all_days())
    assert len(rows(con, lake.raw_day("impression_data", CALENDAR.day(1)))) == 1
    assert len(rows(con, lake.raw_day("impression_data", CALENDAR.day(3)))) == 0
    write_impressions(src, GOOD)
    ingest(con, fmt.IMPRESSIONS, [src / "impression_data.csv"], lake, CALENDAR, all_days())
    assert lake.raw_day("impression_data", CALENDAR.day(1)).read_bytes() == first


def test_gzip_and_crlf_are_read(tmp_path, lake, con):
    src = tmp_path / "src"
    plain = write_impressions(src, GOOD)
    gz = src / "impression_data.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes().replace(b"\n", b"\r\n")))
    result = ingest(con, fmt.IMPRESSIONS, [gz], lake, CALENDAR, all_days())
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (3, 3, 0)
    views = [r["mlog_view_time"] for r in rows(con, lake.raw_day("impression_data", CALENDAR.day(1)))]
    assert 12.340000000000002 in views


def test_header_typos_are_accepted_and_unknown_columns_are_not(tmp_path, lake, con):
    src = tmp_path / "src"
    src.mkdir()
    documented = [c.aliases[0] if c.aliases else c.source for c in fmt.MLOG_STATS.columns]
    (src / "mlog_stats.csv").write_text(",".join(documented) + "\nGCHC,1,5,1,0,0,0,0,0,0\n")
    assert ingest(con, fmt.MLOG_STATS, [src / "mlog_stats.csv"], lake, CALENDAR, all_days()).total_loaded == 1

    (src / "mlog_stats.csv").write_text(",".join([*fmt.MLOG_STATS.header[:-1], "surprise"]) + "\n")
    with pytest.raises(BadInputError, match=r"mlog_stats.csv, line 1: unknown column\(s\) 'surprise'"):
        ingest(con, fmt.MLOG_STATS, [src / "mlog_stats.csv"], lake, CALENDAR, all_days())
    (src / "mlog_stats.csv").write_text(",".join(fmt.MLOG_STATS.header[:-1]) + "\n")
    with pytest.raises(BadInputError, match="missing column.*userFollowCreatorCount"):
        ingest(con, fmt.MLOG_STATS, [src / "mlog_stats.csv"], lake, CALENDAR, all_days())
    (src / "mlog_stats.csv").write_text("")
    with pytest.raises(BadInputError, match="the file is empty"):
        ingest(con, fmt.MLOG_STATS, [src / "mlog_stats.csv"], lake, CALENDAR, all_days())


def test_real_heads_load_completely(tmp_path, lake, con):
    head = require_real_head()
    src = tmp_path / "src"
    shutil.copytree(head, src)
    results = ingest_folder(con, src, lake)
    for stem, result in results.items():
        assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (10_000, 10_000, 0), stem
    raw_lists = sum(1 for line in (head / "impression_data.csv").read_text().splitlines()[1:] if not line.startswith("NA,"))
    parsed = con.execute(
        "SELECT count(*) FILTER (WHERE detail_items IS NOT NULL), sum(len(detail_items)) "
        "FROM read_parquet($p, hive_partitioning = false)",
        {"p": [str(lake.raw_day("impression_data", d)) for d in all_days()]},
    ).fetchone()
    assert parsed[0] == raw_lists == 135
    assert parsed[1] > 134  # the non-empty lists hold several entries each
    assert results["mlog_stats"].rows_loaded and con.execute(
        "SELECT count(*) FROM read_parquet($p) WHERE user_impression_count IS NULL", {"p": str(lake.raw_day("mlog_stats", CALENDAR.day(26)))}
    ).fetchone()[0] == 0


def test_colliding_key_hashes_are_found_per_partition_by_hand():
    import numpy as np

    from churn_dagster.stages.ingest.sql.duplicates import colliding_hashes

    pieces = {
        3: [np.array([7, 7, 9], np.uint64), np.array([7], np.uint64)],  # 7 three times in one bucket
        1: [np.array([5, 3], np.uint64), np.array([2, 5], np.uint64)],  # 5 across two blocks
        2: [np.array([5, 4], np.uint64)],  # 5 again, but in another partition: no collision
        4: [np.array([], np.uint64)],
    }
    found = colliding_hashes(pieces, threads=2)
    assert list(found) == [1, 3]  # in bucket order
    assert found[1].tolist() == [5] and found[3].tolist() == [7]
