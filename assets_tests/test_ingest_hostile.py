"""Hostile input, field by field: every physical line is loaded or quarantined with its physical line number,
the column and the reason, and the count of lines read comes from the file's bytes, not from a parser.

The policy table these cases implement is in docs/DATA_FORMAT.md ("What happens to a row that is not as
published").
"""

from __future__ import annotations

import gzip

import pytest
from conftest import CALENDAR, Imp, all_days, tid
from pipeline_helpers import rows

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.stages.ingest.sql import ingest
from churn_dagster.stages.ingest.sql.lines import MAX_LINE_BYTES

# The fixture's users and cards, as IDs of the published grammar (see conftest.tid).
U1, U7, U8 = tid("U1"), tid("U7"), tid("U8")

HEADER = ",".join(fmt.IMPRESSIONS.header)
GOOD = Imp(U1, "2019-11-01 10:00:00", 1, click=True, view_time=3.5).csv_line()
# Field positions in the impression file (0-based): dt 1, impressPosition 2, impressTime 3, isClick 4,
# isLike 9, mlogId 10, mlogViewTime 11, userId 12.
FIELD = {"dt": 1, "impressPosition": 2, "impressTime": 3, "isClick": 4, "isLike": 9, "mlogId": 10,
         "mlogViewTime": 11, "userId": 12}


def _with(column: str, value: str) -> str:
    fields = GOOD.split(",")
    fields[FIELD[column]] = value
    return ",".join(fields)


def _ingest(tmp_path, lake, con, body: bytes, name="impression_data.csv"):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / name).write_bytes(body)
    return ingest(con, fmt.IMPRESSIONS, [src / name], lake, CALENDAR, all_days())


def _quarantine(con, lake) -> list[dict]:
    folder = lake.root / "quarantine" / "impression_data"
    return sorted((r for f in folder.rglob("*.parquet") for r in rows(con, f)), key=lambda r: r["line"])


def _one_bad_line(tmp_path, lake, con, bad: str) -> dict:
    result = _ingest(tmp_path, lake, con, f"{HEADER}\n{GOOD}\n{bad}\n".encode())
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (2, 1, 1), bad
    (row,) = _quarantine(con, lake)
    assert row["line"] == 3 and row["content"] == bad
    return row


@pytest.mark.parametrize("column", ["dt", "impressPosition", "impressTime"])
@pytest.mark.parametrize("value", ["2.5", "1e1", "0x1F", "1_0", "yes", "T", "+1", " 1", "1 ", "007", "1.0", "--1",
                                   "-0"])
@pytest.mark.parametrize("quoted", [False, True], ids=["plain line", "line with a quote"])
def test_integers_are_plain_base10_never_coerced(tmp_path, lake, con, column, value, quoted):
    """The same rule on both paths: a line without quotes is judged by one regular expression, a line with a
    quote (here the user ID, quoted) field by field; ``-0`` once passed the first and failed the second."""
    bad = _with(column, value)
    if quoted:
        bad = bad.replace(f",{U1}", f',"{U1}"')
    row = _one_bad_line(tmp_path, lake, con, bad)
    assert row["column_name"] == column and "plain base-10 integer" in row["reason"]


def test_integers_that_do_not_fit_their_bits_are_rejected(tmp_path, lake, con):
    row = _one_bad_line(tmp_path, lake, con, _with("impressPosition", "4294967296"))
    assert row["reason"] == "impressPosition is not a plain base-10 integer of 32 bits"


@pytest.mark.parametrize("value", ["T", "true", "yes", "2", "-1", "01", "1.0", ""])
def test_flags_are_0_or_1_only(tmp_path, lake, con, value):
    row = _one_bad_line(tmp_path, lake, con, _with("isLike", value))
    assert (row["column_name"], row["reason"]) == ("isLike", "isLike is not 0 or 1")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "Infinity", "1e400", "0x10", "1,5"])
def test_floats_are_finite_decimals(tmp_path, lake, con, value):
    bad = _with("mlogViewTime", value)
    result = _ingest(tmp_path, lake, con, f"{HEADER}\n{GOOD}\n{bad}\n".encode())
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (2, 1, 1)
    (row,) = _quarantine(con, lake)
    expected = ("(line)", "wrong number of fields (expected 13)") if "," in value else (
        "mlogViewTime", "mlogViewTime is not a finite decimal number")
    assert (row["column_name"], row["reason"]) == expected


@pytest.mark.parametrize("value", ["86400.01", "90000", "1e300"])
def test_a_view_time_longer_than_a_day_is_rejected(tmp_path, lake, con, value):
    # Finite, but no card is viewed for more than a day; and a bound keeps the exact sums of view times exact.
    row = _one_bad_line(tmp_path, lake, con, _with("mlogViewTime", value))
    assert (row["column_name"], row["reason"]) == ("mlogViewTime", "mlogViewTime is more than 86,400 seconds (a day)")


def test_a_view_time_of_a_whole_day_loads(tmp_path, lake, con):
    result = _ingest(tmp_path, lake, con, f"{HEADER}\n{_with('mlogViewTime', '86400')}\n".encode())
    assert (result.total_loaded, result.rows_quarantined) == (1, 0)
    (stored,) = rows(con, lake.raw_day("impression_data", CALENDAR.day(1)))
    assert stored["mlog_view_time"] == 86400.0


@pytest.mark.parametrize(("column", "value"), [("userId", ""), ("userId", '""'), ("mlogId", ""), ("mlogId", '""'),
                                               ("userId", "NA")])
def test_an_empty_id_is_missing_not_the_id_empty_string(tmp_path, lake, con, column, value):
    row = _one_bad_line(tmp_path, lake, con, _with(column, value))
    assert (row["column_name"], row["reason"]) == (column, f"{column} is missing")


def test_physical_lines_are_counted_and_numbered_whatever_a_parser_would_merge(tmp_path, lake, con):
    """An unterminated quote and a quoted field holding a newline would each make a CSV parser swallow the
    next lines into one record; here every physical line is read, numbered and judged on its own."""
    lines = [
        GOOD,                                        # 2 loaded
        '"[{\'isZan\': \'0\'', '}]",1,1,1572573601000,1,0,0,0,0,0,GCJC,1.0,ICHCLC',  # 3, 4: a list split over two lines
        "",                                          # 5 blank
        '"unterminated,1,1,1572573601000,1,0,0,0,0,0,GCJC,1.0,ICHCMC',              # 6
        Imp(U7, "2019-11-01 11:00:00").csv_line(),  # 7 loaded
        "\r",                                        # 8 blank (a lone CR)
        Imp(U8, "2019-11-01 12:00:00").csv_line(),  # 9 loaded, last line without a newline
    ]
    result = _ingest(tmp_path, lake, con, ("\n".join([HEADER, *lines])).encode())
    assert result.rows_read == 8 == result.total_loaded + result.rows_quarantined and result.total_loaded == 3
    bad = {r["line"]: (r["column_name"], r["reason"]) for r in _quarantine(con, lake)}
    assert sorted(bad) == [3, 4, 5, 6, 8]
    assert bad[5] == bad[8] == ("(line)", "blank line")
    assert all(column == "(line)" for column, _ in bad.values())
    loaded = rows(con, lake.raw_day("impression_data", CALENDAR.day(1)), "ORDER BY source_line")
    assert [r["source_line"] for r in loaded] == [2, 7, 9]


def test_an_over_long_line_is_quarantined_with_column_and_reason(tmp_path, lake, con):
    huge = _with("userId", "U" * (MAX_LINE_BYTES + 10))
    result = _ingest(tmp_path, lake, con, gzip.compress(f"{HEADER}\n{huge}\n{GOOD}\n".encode()), "impression_data.csv.gz")
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (2, 1, 1)
    (row,) = _quarantine(con, lake)
    assert (row["line"], row["column_name"]) == (2, "(line)") and row["reason"].startswith("line longer than")
    assert len(row["content"]) < 10_000  # only the start of the line is kept


@pytest.mark.parametrize(("entry", "reason"), [
    ("{'isZan': '0', 'isComment': '0', 'mlogId': 'KC', 'isIntoPersonalHomepage': '0', 'mlogViewTime': '1.4', "
     "'isShare': '0', 'isViewComment': '0', 'position': '7', 'logtime': '1572573700000', 'extra': '1'}",
     "detailMlogInfoList has an entry with missing or unknown keys"),
    ("{'isZan': '0', 'isComment': '0', 'mlogId': 'KC', 'isIntoPersonalHomepage': '0', 'mlogViewTime': '1.4', "
     "'isShare': '0', 'isViewComment': '0', 'logtime': '1572573700000'}",
     "detailMlogInfoList has an entry with missing or unknown keys"),
    ("{'isZan': '0', 'isComment': '0', 'mlogId': 'KC', 'isIntoPersonalHomepage': '0', 'mlogViewTime': '1.4', "
     "'isShare': '0', 'isViewComment': '0', 'position': '7.5', 'logtime': '1572573700000'}",
     "detailMlogInfoList has an entry whose values are not as published"),
    ("{'isZan': 'yes', 'isComment': '0', 'mlogId': 'KC', 'isIntoPersonalHomepage': '0', 'mlogViewTime': '1.4', "
     "'isShare': '0', 'isViewComment': '0', 'position': '7', 'logtime': '1572573700000'}",
     "detailMlogInfoList has an entry whose values are not as published"),
    ("{'isZan': '0'", "detailMlogInfoList is not a list of dicts"),
    *((f"{{'isZan': '0', 'isComment': '0', 'mlogId': 'KC', 'isIntoPersonalHomepage': '0', 'mlogViewTime': '{v}', "
       "'isShare': '0', 'isViewComment': '0', 'position': '7', 'logtime': '1572573700000'}",
       "detailMlogInfoList has an entry whose values are not as published") for v in ("-1", "86400.01", "1e300")),
])
def test_swipe_down_lists_must_be_exactly_as_published(tmp_path, lake, con, entry, reason):
    good_entry = ("{'isZan': '0', 'isComment': '0', 'mlogId': 'KC', 'isIntoPersonalHomepage': '0', "
                  "'mlogViewTime': '1.4', 'isShare': '0', 'isViewComment': '0', 'position': '7', 'logtime': '1572573700000'}")
    listed = lambda *entries: '"[' + ", ".join(entries) + ']"' + GOOD[2:]  # noqa: E731
    row = _one_bad_line(tmp_path, lake, con, listed(good_entry, entry))
    assert (row["column_name"], row["reason"]) == ("detailMlogInfoList", reason)
    (stored,) = rows(con, lake.raw_day("impression_data", CALENDAR.day(1)))
    assert stored["detail_items"] is None  # the good line has no list


def test_a_well_formed_list_is_parsed_into_typed_entries(tmp_path, lake, con):
    entry = ("{'isZan': '1', 'isComment': '0', 'mlogId': 'KCGC', 'isIntoPersonalHomepage': '0', "
             "'mlogViewTime': '12.340000000000002', 'isShare': '0', 'isViewComment': '1', 'position': '7', "
             "'logtime': '1572573700000'}")
    line = '"[' + entry + ']"' + GOOD[2:]
    empty_list = "[]" + _with("impressPosition", "2")[2:]  # the real file's one unquoted empty list
    result = _ingest(tmp_path, lake, con, f"{HEADER}\n{line}\n{empty_list}\n".encode())
    assert (result.total_loaded, result.rows_quarantined) == (2, 0)
    first, second = rows(con, lake.raw_day("impression_data", CALENDAR.day(1)), "ORDER BY source_line")
    assert first["detail_items"] == [{"mlog_id": "KCGC", "position": 7, "view_time": 12.340000000000002,
                                      "logtime_ms": 1572573700000, "is_like": True, "is_comment": False,
                                      "is_into_homepage": False, "is_share": False, "is_view_comment": True}]
    assert second["detail_items"] == []


@pytest.mark.parametrize(("spec", "header", "line", "column"), [
    (fmt.MLOG_STATS, None, "GCHC,1,-5,1,0,0,0,0,0,0", "userImprssionCount"),
    (fmt.MLOG_STATS, None, "GCHC,1,5,1,0,0,0,0,0,-1", "userFollowCreatorCount"),
    (fmt.CREATOR_STATS, None, '"HCHC",1,-1', "PushlishMlogCnt"),
    (fmt.USER_DEMOGRAPHICS, None, f"{U1},guang dong,21,female,12,-5,6", "followCnt"),
    (fmt.USER_DEMOGRAPHICS, None, f"{U1},guang dong,-3,female,12,5,6", "age"),
    (fmt.CREATOR_DEMOGRAPHICS, None, '"HCHC","",30,5,-9,0,7', "followeds"),
    (fmt.MLOG_DEMOGRAPHICS, None, '"GC","AFBHAHLH","AFBHAHLH","HC",-2,2,"5001,5010,5054",-1', "publishTime"),
])
def test_negative_counts_are_rejected_in_every_file(tmp_path, lake, con, spec, header, line, column):
    src = tmp_path / "src"
    src.mkdir()
    quote = (lambda h: f'"{h}"') if spec.quote_strings else (lambda h: h)
    (src / f"{spec.stem}.csv").write_text(",".join(quote(h) for h in spec.header) + "\n" + line + "\n")
    result = ingest(con, spec, [src / f"{spec.stem}.csv"], lake, CALENDAR, all_days() if spec.daily else None)
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (1, 0, 1)
    (row,) = [r for f in (lake.root / "quarantine").rglob("*.parquet") for r in rows(con, f)]
    assert (row["line"], row["column_name"], row["reason"]) == (2, column, f"{column} is negative")


def test_an_empty_string_id_in_a_quoted_file_is_missing(tmp_path, lake, con):
    src = tmp_path / "src"
    src.mkdir()
    header = ",".join(f'"{h}"' for h in fmt.CREATOR_DEMOGRAPHICS.header)
    (src / "creator_demographics.csv").write_text(f'{header}\n"","",30,5,9,0,7\n"HCHC","",30,5,9,0,7\n')
    result = ingest(con, fmt.CREATOR_DEMOGRAPHICS, [src / "creator_demographics.csv"], lake, CALENDAR)
    assert (result.total_loaded, result.rows_quarantined) == (1, 1)
    assert result.quarantined_by_reason == {"creatorId is missing": 1}
    (loaded,) = rows(con, lake.raw_snapshot("creator_demographics"))
    assert loaded["creator_id"] == "HCHC" and loaded["gender"] is None  # "" is the file's null token


def test_a_header_only_file_writes_empty_partitions(tmp_path, lake, con):
    result = _ingest(tmp_path, lake, con, (HEADER + "\n").encode())
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (0, 0, 0)
    assert all(lake.raw_day("impression_data", d).exists() for d in all_days())
    assert rows(con, lake.raw_day("impression_data", CALENDAR.day(3))) == []


def test_mixed_line_endings_load_every_line(tmp_path, lake, con):
    """A CRLF file with LF lines appended to it (a hand-edited or concatenated export) loads line by line."""
    second = _with("impressPosition", "2")
    body = f"{HEADER}\r\n{GOOD}\r\n".encode() + f"{second}\n".encode()
    result = _ingest(tmp_path, lake, con, body)
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (2, 2, 0)
