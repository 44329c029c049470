"""The per-day figures of the impressions' metadata are counted as the rows are written (``tallies``): they
must be what counting the written files says, duplicates dropped, on a hand-computed day."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
from conftest import CALENDAR, Imp, all_days, tid, write_impressions
from continuation_helpers import swipe_list

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.stages.ingest.sql import ingest
from churn_dagster.stages.ingest.sql.tallies import impression_tally
from churn_dagster.storage.duck import literal_paths

U1, U2 = tid("U1"), tid("U2")
ROWS = [
    Imp(U1, "2019-11-01 10:00:00", 1, click=True, like=True, view_time=3.5, detail=swipe_list("2019-11-01 10:00:40")),
    Imp(U1, "2019-11-01 10:00:00", 2, like=True),  # an action without a click
    Imp(U1, "2019-11-01 10:00:00", 3),
    Imp(U1, "2019-11-01 10:00:00", 2, like=True),  # an exact copy of the second line: quarantined
    Imp(U2, "2019-11-01 11:00:00", 1, click=True, view_time=1.0),
    Imp(U2, "2019-11-02 09:00:00", 1, comment=True, detail="[]"),  # the published empty list is a list
]


def _counted_from_file(con, path) -> dict[str, int]:
    """What the metadata said before it was tallied: SQL over the written file."""
    rows, clicks, lists, unclicked = con.execute(
        """SELECT count(*), coalesce(count_if(is_click), 0), count(detail_items),
                  coalesce(count_if(NOT is_click AND
                                    (is_like OR is_comment OR is_share OR is_view_comment OR is_into_homepage)), 0)
           FROM read_parquet($f, hive_partitioning = false)""", {"f": literal_paths([path])}).fetchone()
    return {"rows": rows, "clicks": clicks, "detail_lists": lists, "actions_without_click": unclicked}


def test_the_tallies_are_the_written_files_counts_by_hand(tmp_path, lake, con):
    source = write_impressions(tmp_path / "src", ROWS)
    result = ingest(con, fmt.IMPRESSIONS, [source], lake, CALENDAR, all_days())
    assert result.rows_quarantined == 1  # the copy
    first, second = result.tallies["2019-11-01"], result.tallies["2019-11-02"]
    assert dict(first) == {"rows": 4, "clicks": 2, "detail_lists": 1, "actions_without_click": 1}
    assert dict(second) == {"rows": 1, "clicks": 0, "detail_lists": 1, "actions_without_click": 1}
    for day in all_days():
        key = day.isoformat()
        counted = _counted_from_file(con, lake.raw_day(fmt.IMPRESSIONS.stem, day))
        assert {k: result.tallies[key].get(k, 0) for k in counted} == counted, key
    assert dict(result.tallies[date(2019, 11, 3).isoformat()]) == {}  # a day without rows counts nothing


def test_a_null_flag_counts_as_neither_as_in_sql(con):
    rows = pa.table({
        "is_click": [None, False, None, True],
        "is_like": [True, None, None, False], "is_comment": [False] * 4, "is_share": [False] * 4,
        "is_view_comment": [False] * 4, "is_into_homepage": [False, False, True, False],
        "detail_items": pa.array([None, [], None, None], pa.list_(pa.int32())),
    })
    # Row 0: NOT NULL AND true is NULL; row 1: true AND (NULL OR false) is NULL; row 2: NULL AND true is NULL.
    assert impression_tally(rows) == {"rows": 4, "clicks": 1, "detail_lists": 1, "actions_without_click": 0}
    con.register("_rows", rows)
    assert con.execute("""SELECT count(*), count_if(is_click), count(detail_items),
                                 count_if(NOT is_click AND (is_like OR is_comment OR is_share OR is_view_comment
                                                            OR is_into_homepage)) FROM _rows""").fetchone() == (4, 1, 1, 0)


def test_a_block_is_routed_good_first_then_by_day_then_by_line():
    from churn_dagster.stages.ingest.sql.query import sort_block

    def block(lines, buckets, rules):
        return pa.table({"source_line": pa.array(lines, pa.int64()), "_bucket": pa.array(buckets, pa.int32()),
                         "_rule": pa.array(rules, pa.int32())})

    # All good and in line order (the radix path): days 3, 1, 3, 2, 1 become 1, 1, 2, 3, 3, in line order.
    good = sort_block(block([2, 3, 4, 5, 6], [3, 1, 3, 2, 1], [None] * 5))
    assert good["source_line"].to_pylist() == [3, 6, 5, 2, 4]
    # A rejected line and lines out of order (the fast and exact paths' rows stacked) take the general sort.
    mixed = sort_block(block([5, 2, 4, 3], [1, 2, 1, 1], [None, None, 7, None]))
    assert mixed["source_line"].to_pylist() == [3, 5, 2, 4]
    assert mixed["_rule"].to_pylist() == [None, None, None, 7]
