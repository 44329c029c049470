"""The fast path of event-log CSV staging (``stages/events/sql/fast_lines.py``) changes no outcome: random
mixes of canonical and hostile lines, loaded with it and with every line the exact SQL way, give the same
events and quarantine files, byte for byte; and the canonical pattern admits what it should, by hand."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from churn_dagster.stages.events.load import load_events
from churn_dagster.stages.events.sql.fast_lines import canonical_pattern, split_canonical
from churn_dagster.stages.events.sql.mapping import EventMapping
from churn_dagster.stages.events.sql.sources import FileSource
from churn_dagster.stages.events.sql.times import TimeRule

HEADER = ["user", "ts", "type", "item", "amount"]
MAPPING = EventMapping("user", "ts", TimeRule("iso", "Europe/Berlin"), event_type="type", item_id="item",
                       value="amount")


def _plain(rng: random.Random, delimiter: str) -> str:
    if rng.random() < 0.7:
        return f"i{rng.randrange(100_000)}"
    return rng.choice(["käse", "", " padded ", "x y", "2024-03-01", "7.5", "NA"])


def _quoted(rng: random.Random, delimiter: str) -> str:
    inner = rng.choice(["a", f"with{delimiter}delimiter", 'say ""hi""', "", "ünï", "2024-03-02 10:00:00"])
    return f'"{inner}"'


def _good_line(rng: random.Random, delimiter: str) -> bytes:
    fields = [rng.choice(["u1", "u2", '"u3"', "u4", "ü5"]),
              rng.choice(["2024-03-01 10:00:00", '"2024-03-01T11:00:00+01:00"', "2024-03-31 02:30:00", "2024-3-1"]),
              rng.choice(["view", "buy", '"view"', ""]),
              (_quoted if rng.random() < 0.4 else _plain)(rng, delimiter),
              rng.choice(["", "19.90", '"5"', "nan", "EUR 5"])]
    return (delimiter.join(fields) + ("\r" if rng.random() < 0.1 else "")).encode()


def _hostile_line(rng: random.Random, delimiter: str) -> bytes:
    good = _good_line(rng, delimiter)
    kind = rng.choices(range(8), weights=[4, 4, 4, 4, 4, 4, 1, 4])[0]  # bytes that are not UTF-8 the rarest
    return [
        b"",                                              # blank
        good + delimiter.encode() + b"extra",             # a field too many
        delimiter.encode().join(good.split(delimiter.encode())[:3]),  # too few
        good.replace(b"u", b'u"', 1) if b"u" in good else b'u"1' + good,  # a quote inside a bare field
        b'"open' + delimiter.encode() + good,             # a quote never closed
        good[:5] + b"\r" + good[5:],                      # a carriage return inside
        good + b"\xff",                                   # not UTF-8
        b'"a"b' + delimiter.encode() + good,              # text after a closing quote
    ][kind]


def _block(lines: list[bytes]) -> pa.Table:
    return pa.table({"line": pa.array(range(2, 2 + len(lines)), pa.int64()),
                     "raw": pa.array([line + b"\n" for line in lines], pa.large_binary()),
                     "too_long": pa.array([False] * len(lines))})


@pytest.mark.parametrize("seed, delimiter", [(0, ","), (1, ","), (2, ";"), (3, "\t"), (4, ",")])
def test_fast_and_exact_staging_write_the_same_bytes(con, tmp_path, seed, delimiter):
    rng = random.Random(seed)
    lines = [_hostile_line(rng, delimiter) if rng.random() < 0.3 else _good_line(rng, delimiter) for _ in range(2000)]
    path = tmp_path / "log.csv"
    path.write_bytes(delimiter.join(HEADER).encode() + b"\n" + b"\n".join(lines) + b"\n")
    outputs = {}
    for fast in (True, False):
        out = tmp_path / f"fast={fast}"
        summary = load_events(con, FileSource((path,), delimiter=delimiter, fast=fast), MAPPING,
                              out / "events.parquet", out / "quarantine.parquet")
        outputs[fast] = (summary, (out / "events.parquet").read_bytes(), (out / "quarantine.parquet").read_bytes())
    assert outputs[True] == outputs[False]
    summary = outputs[True][0]
    assert summary.loaded > 200 and summary.quarantined > 500
    # Both paths had work to do: the pieces without a line that is not UTF-8 went the fast way.
    parsed, rest = split_canonical(_block(lines), HEADER, delimiter)
    assert parsed.num_rows > 800 and rest.num_rows > 400


@pytest.mark.parametrize("line, canonical", [
    ("a,b,c", True),
    ('"a,1","b ""q""",', True),
    ("a,b,c\r", True),       # a CRLF ending
    (",,", True),            # three empty fields
    ("a,b", False),          # two fields
    ("a,b,c,d", False),
    ('a,b"x,c', False),      # a quote inside a bare field
    ('"a"x,b,c', False),     # text after the closing quote
    ('"a,b,c', False),       # never closed
    ("a,b\r,c", False),      # a carriage return inside
    ("a,b,c\r\r", False),
    (' "a",b,c', False),     # a space before the opening quote
])
def test_the_canonical_pattern_by_hand(line, canonical):
    parsed, rest = split_canonical(_block([line.encode()]), ["x", "y", "z"], ",")
    assert (parsed.num_rows, rest.num_rows) == ((1, 0) if canonical else (0, 1)), canonical_pattern(3, ",")


def test_lines_of_megabytes_take_the_fast_path_whole(con, tmp_path):
    """Arrow parses in blocks and refuses a line longer than one (its default is 1 MiB): lines of 3 and 4 MB
    among short ones, one of them quoted, are split by the fast path exactly as by the exact one."""
    long_item, quoted_item = "x" * 4_000_000, "y" * 3_000_000
    lines = [f"u{k},2024-03-01 10:00:00,view,i{k},1" for k in range(30_000)]
    lines[10_000] = f"u1,2024-03-01 10:00:00,view,{long_item},1"
    lines[20_000] = f'u2,2024-03-01 10:00:00,view,"{quoted_item}",1'
    parsed, rest = split_canonical(_block([line.encode() for line in lines]), HEADER, ",")
    assert (parsed.num_rows, rest.num_rows) == (30_000, 0)
    items = parsed.column("item").to_pylist()
    assert items[10_000] == long_item and items[20_000] == quoted_item and items[5] == "i5"
