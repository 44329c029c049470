"""Loading an event log (``stages/events/load.py``): every record loaded once or quarantined with its file,
line, column and reason, counted from the source itself, and the same bytes on a re-run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churn_dagster.stages.events.load import CountMismatch, load_events
from churn_dagster.stages.events.sql.mapping import EventMapping
from churn_dagster.stages.events.sql.sources import FileSource, SourceError
from churn_dagster.stages.events.sql.times import TimeRule

CLICKS = EventMapping("user", "ts", TimeRule("iso", "Europe/Berlin"), event_type="type", item_id="item", value="amount")

GOOD_AND_BAD = [
    b"user,ts,type,item,amount",
    b"u1,2024-03-01 10:00:00,view,i1,",               # 2 loaded
    b"u1,2024-03-01 10:05:00,buy,i1,19.90",           # 3 loaded
    b'"u2","2024-03-02 09:00:00","view","i, with comma",',  # 4 loaded: a quoted comma
    b"u2,2024-03-02 09:00:00,view,\"i, with comma\",",  # 5 the same event as line 4: a duplicate
    b"u3,2024-03-31 02:30:00,view,i2,",               # 6 skipped by the clock change in Berlin
    b",2024-03-01 10:00:00,view,i1,",                 # 7 empty user
    b"u4,01/03/2024,view,i1,",                        # 8 not ISO
    b"u5,2024-03-01 10:00:00,,i1,",                   # 9 empty event type
    b"u6,2024-03-01 10:00:00,buy,i1,EUR 5",           # 10 value not a number
    b"u7,2024-03-01 10:00:00,buy,i1,nan",             # 11 value not finite
    b"u8,2024-03-01 10:00:00,view",                   # 12 too few fields
    b"",                                              # 13 blank
    b"u9,2024-03-01 10:00:00,view,\xff\xfe,",         # 14 not UTF-8
    b'u10,2024-03-01 10:00:00,view,i"1,',             # 15 a quote inside an unquoted field
    b"u11,2024-03-01 10:00:00,view,i1,\r",            # 16 a CRLF ending: loaded
    b"u12,2024-03-01 10:00:00,buy,i1,-2e9",           # 17 value beyond what exact sums hold
]


def _load(con, tmp_path: Path, source, mapping=CLICKS):
    out = tmp_path / "out"
    return load_events(con, source, mapping, out / "events.parquet", out / "quarantine.parquet"), out


def test_every_line_is_loaded_or_quarantined_with_its_line_column_and_reason(con, tmp_path):
    path = tmp_path / "log [1].csv"  # glob characters in the name: read literally
    path.write_bytes(b"\n".join(GOOD_AND_BAD) + b"\n")
    (tmp_path / "log 1.csv").write_bytes(b"user,ts,type,item,amount\nx,2024-01-01,view,i,\n")  # must not be read
    summary, out = _load(con, tmp_path, FileSource((path,)))
    assert (summary.counted, summary.loaded, summary.quarantined) == (16, 4, 12)
    events = pd.read_parquet(out / "events.parquet")
    assert sorted(zip(events["line"], events["user_id"])) == [(2, "u1"), (3, "u1"), (4, "u2"), (16, "u11")]
    q = pd.read_parquet(out / "quarantine.parquet").set_index("line")
    expected = {
        5: ("(line)", "duplicate: the same event"),
        6: ("ts", "event_time: local time skipped by a clock change in Europe/Berlin"),
        7: ("user", "user_id: empty"),
        8: ("ts", "event_time: not an ISO 8601 time"),
        9: ("type", "event_type: empty"),
        10: ("amount", "value: not a number"),
        11: ("amount", "value: not a finite number"),
        12: ("(line)", "(line): expected 5 fields (the header's), found 3"),
        13: ("(line)", "(line): a blank line"),
        14: ("(line)", "(line): the line is not valid UTF-8"),
        15: ("(line)", "(line): a field holds a quote but is not wholly quoted"),
        17: ("amount", "value: beyond ±1e+09"),
    }
    assert set(q.index) == set(expected)
    for line, (column, reason) in expected.items():
        assert q.loc[line, "column"] == column, line
        assert q.loc[line, "reason"].startswith(reason), (line, q.loc[line, "reason"])
    assert q.loc[5, "value"] == f"{path} line 4"  # where the first copy is
    assert q.loc[10, "value"] == "EUR 5"
    assert set(q["file"]) == {str(path)}
    # The quoted comma survives, the value is typed, the local day follows the declared zone.
    row = events[events["line"] == 4].iloc[0]
    assert row["item_id"] == "i, with comma"
    assert events.loc[events["line"] == 3, "value"].item() == pytest.approx(19.90)
    assert str(events.loc[events["line"] == 2, "local_day"].item()) == "2024-03-01"


def test_an_event_id_decides_what_a_duplicate_is(con, tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("order,customer,day,amount\nO1,c1,2024-01-05,10\nO2,c1,2024-01-05,10\nO1,c1,2024-01-05,10\n")
    mapping = EventMapping("customer", "day", value="amount", event_id="order")
    summary, out = _load(con, tmp_path, FileSource((path,)), mapping)
    # Two equal orders with their own ids are two events; the id delivered twice is one.
    assert (summary.loaded, summary.quarantined) == (2, 1)
    assert pd.read_parquet(out / "quarantine.parquet")["line"].tolist() == [4]
    without_ids = EventMapping("customer", "day", value="amount")
    summary, _ = _load(con, tmp_path, FileSource((path,)), without_ids)
    assert (summary.loaded, summary.quarantined) == (1, 2)


def test_parquet_sources_number_their_rows_and_read_typed_columns_as_text(con, tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(pa.table({"uid": [1, 2], "t": pa.array([1_700_000_000, 7], pa.int64()), "v": [1.5, 2.0]}),
                   folder / "a.parquet")
    pq.write_table(pa.table({"uid": [3], "t": pa.array([1_700_000_100], pa.int64()), "v": [None]}, ),
                   folder / "b.parquet")
    mapping = EventMapping("uid", "t", TimeRule("epoch_s"), value="v")
    summary, out = _load(con, tmp_path, FileSource((folder,), "parquet"), mapping)
    assert (summary.counted, summary.loaded, summary.quarantined) == (3, 2, 1)
    q = pd.read_parquet(out / "quarantine.parquet")
    assert q[["file", "line", "column"]].values.tolist() == [[str(folder / "a.parquet"), 2, "t"]]
    assert pd.read_parquet(out / "events.parquet")["event_ms"].tolist() == [1_700_000_000_000, 1_700_000_100_000]


def test_a_rerun_writes_the_same_bytes(con, tmp_path):
    path = tmp_path / "log.csv"
    path.write_bytes(b"\n".join(GOOD_AND_BAD) + b"\n")
    digests = []
    for run in range(2):
        _, out = _load(con, tmp_path / f"run{run}", FileSource((path,)))
        digests.append([hashlib.sha256((out / n).read_bytes()).hexdigest() for n in ("events.parquet", "quarantine.parquet")])
    assert digests[0] == digests[1]


def test_a_count_that_does_not_add_up_publishes_nothing(con, tmp_path, monkeypatch):
    path = tmp_path / "log.csv"
    path.write_text("user,ts\nu1,2024-01-01\n")
    source = FileSource((path,))
    monkeypatch.setattr(FileSource, "stage", lambda self, *a, **k: 2)  # a source that miscounts
    with pytest.raises(CountMismatch):
        _load(con, tmp_path, source, EventMapping("user", "ts"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_files_with_other_columns_and_missing_paths_are_one_line_errors(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("user,ts\n")
    b.write_text("user,time\n")
    with pytest.raises(SourceError, match="differ from those of"):
        FileSource((a, b)).columns()
    with pytest.raises(SourceError, match="does not exist"):
        FileSource((tmp_path / "nope.csv",)).files()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no csv file"):
        FileSource((tmp_path / "empty",)).files()


def test_a_headerless_latin1_file_with_a_two_character_delimiter(con, tmp_path):
    """A MovieLens-1M-style ratings.dat (``UserID::MovieID::Rating::Timestamp``, no header line) in
    ISO-8859-1: every line is a record from line 1, and a title byte that is not UTF-8 is read as latin-1."""
    path = tmp_path / "ratings.dat"
    path.write_bytes(b"1::1193::5::978300760\n"                 # 1 loaded
                     b"1::Caf\xe9::3::978302109\n"                # 2 loaded: the item is 'Café'
                     b"2::1357::4\n"                              # 3 a field short
                     b"2::3068::4::97830\n")                      # 4 a time in the 1970s: outside the years
    mapping = EventMapping("user", "ts", TimeRule("epoch_s"), item_id="movie", value="rating")
    source = FileSource((path,), delimiter="::", names=("user", "movie", "rating", "ts"), encoding="latin-1")
    summary, out = _load(con, tmp_path, source, mapping)
    assert (summary.counted, summary.loaded, summary.quarantined) == (4, 2, 2)
    events = pd.read_parquet(out / "events.parquet").sort_values("line")
    assert events["line"].tolist() == [1, 2] and events["item_id"].tolist() == ["1193", "Café"]
    assert events["value"].tolist() == [5.0, 3.0]
    assert events["event_ms"].tolist() == [978_300_760_000, 978_302_109_000]
    q = pd.read_parquet(out / "quarantine.parquet").set_index("line")
    assert q.loc[3, "reason"] == "(line): expected 4 fields (source.columns), found 3"
    assert q.loc[4, "column"] == "ts" and q.loc[4, "reason"].startswith("event_time: outside the years")
    # As UTF-8, the same file quarantines the latin-1 line and says which setting reads it.
    summary, out = _load(con, tmp_path, FileSource((path,), delimiter="::", names=("user", "movie", "rating", "ts")),
                         mapping)
    reason = pd.read_parquet(out / "quarantine.parquet").set_index("line").loc[2, "reason"]
    assert reason == "(line): the line is not valid UTF-8 (an ISO-8859-1 file needs source.encoding: latin-1)"
    # A byte-order mark before line 1 (as Windows tools write it) is not part of the first user.
    bom = tmp_path / "bom.dat"
    bom.write_bytes(b"\xef\xbb\xbf1::1193::5::978300760\n1::1194::4::978300761\n")
    summary, out = _load(con, tmp_path, FileSource((bom,), delimiter="::", names=("user", "movie", "rating", "ts")),
                         mapping)
    assert pd.read_parquet(out / "events.parquet").sort_values("line")["user_id"].tolist() == ["1", "1"]
    with pytest.raises(SourceError, match=r"line 1: 4 fields, but source.columns names 3"):
        FileSource((path,), delimiter="::", names=("user", "movie", "ts")).columns()


def test_us_dates_through_a_strptime_pattern(con, tmp_path):
    """An Online-Retail-style invoice log: ``12/1/2010 8:26`` in London time."""
    path = tmp_path / "retail.csv"
    path.write_text("InvoiceNo,InvoiceDate,CustomerID,Price\n536365,12/1/2010 8:26,17850,2.55\n"
                    "536366,2010-12-01 08:28,17850,1.85\n536367,6/1/2011 8:34,13047,1.69\n")
    mapping = EventMapping("CustomerID", "InvoiceDate", TimeRule("%m/%d/%Y %H:%M", "Europe/London"), value="Price")
    summary, out = _load(con, tmp_path, FileSource((path,)), mapping)
    assert (summary.loaded, summary.quarantined) == (2, 1)
    events = pd.read_parquet(out / "events.parquet").sort_values("line")
    # 1 Dec 2010 08:26 GMT = 1,291,191,960 s; 1 June 2011 08:34 BST (UTC+1) = 07:34 UTC = 1,306,913,640 s.
    assert events["event_ms"].tolist() == [1_291_191_960_000, 1_306_913_640_000]
    assert [str(d) for d in events["local_day"]] == ["2010-12-01", "2011-06-01"]
    q = pd.read_parquet(out / "quarantine.parquet")
    assert q["line"].tolist() == [3] and q["reason"].item().startswith("event_time: does not match time_format")


def test_a_tab_separated_dump_whose_quotes_are_ordinary_characters(con, tmp_path):
    """A Last.fm-style listening log (tab-separated, no header, no quoting): a title like ``12" Mix`` is a
    field like any other once the source says ``quote: none``; as quoted CSV that line is refused."""
    path = tmp_path / "listens.tsv"
    path.write_text('user_000001\t2009-05-04T23:08:57Z\tDeep Dish\tFuck Me Im Famous (12" Mix)\n'
                    'user_000001\t2009-05-04T13:54:10Z\t"Ryuichi Sakamoto"\tComposition 0919\n')
    mapping = EventMapping("user", "ts", item_id="track")
    names = ("user", "ts", "artist", "track")
    summary, out = _load(con, tmp_path, FileSource((path,), delimiter="\t", names=names, quoted=False), mapping)
    assert (summary.loaded, summary.quarantined) == (2, 0)
    events = pd.read_parquet(out / "events.parquet").sort_values("line")
    assert events["item_id"].tolist() == ['Fuck Me Im Famous (12" Mix)', "Composition 0919"]
    # 2009-05-04 23:08:57 UTC = 1,241,478,537 s.
    assert events["event_ms"].iloc[0] == 1_241_478_537_000
    summary, out = _load(con, tmp_path, FileSource((path,), delimiter="\t", names=names), mapping)
    assert (summary.loaded, summary.quarantined) == (1, 1)
    assert pd.read_parquet(out / "quarantine.parquet")["line"].tolist() == [1]
