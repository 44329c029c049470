"""The fast path of the NCM ingest (``stages/ingest/sql/fast.py``) changes no outcome: random mixes of canonical
and hostile lines of every daily file, ingested with it and with every line the exact SQL way, give the same
partitions and quarantine files, byte for byte; the comparison fails when the fast path is broken on purpose;
and the canonical pattern admits what it should, by hand."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.domain.calendar import Calendar
from churn_dagster.stages.ingest.sql import fast as fast_module
from churn_dagster.stages.ingest.sql import run as run_module
from churn_dagster.stages.ingest.sql.fast import FastLines, canonical_pattern
from churn_dagster.storage.lake import Lake

CAL = Calendar()
DAY = 86_400_000
FIRST_MS = 1572537600000  # 2019-11-01 00:00 Asia/Shanghai


def _entry(rng: random.Random, **change) -> str:
    values = {"isZan": rng.choice("01"), "isComment": "0", "mlogId": rng.choice(["GCHC", "KCLCMCNC", "PCPCPC"]),
              "isIntoPersonalHomepage": "0", "mlogViewTime": rng.choice(["1.44", "42", "0.5", "1.0900000000000003",
                                                                         "3e-05", "-0.0"]),
              "isShare": "0", "isViewComment": rng.choice("01"), "position": str(rng.randrange(1, 40)),
              "logtime": str(FIRST_MS + rng.randrange(10 * DAY))}
    values.update(change)
    return "{" + ", ".join(f"'{k}': '{v}'" for k, v in values.items() if v is not None) + "}"


def _impression(rng: random.Random) -> list[str]:
    dt = rng.randrange(1, 31)
    t = FIRST_MS + (dt - 1) * DAY + rng.randrange(DAY)
    detail = rng.choices(["NA", "[]", None], weights=[8, 1, 2])[0]
    if detail is None:
        detail = '"[' + ", ".join(_entry(rng) for _ in range(rng.randrange(1, 5))) + ']"'
    return [detail, str(dt), str(rng.randrange(1, 60)), str(t), *(rng.choice("0001") for _ in range(6)),
            rng.choice(["KCNCOC", "GCHCIC", "PCPC"]), rng.choice(["NA", "3.5", "12", "0.25"]),
            rng.choice(["PCNCGC", "MCOCNC", "JCKC"])]


def _stats(rng: random.Random) -> list[str]:
    return [rng.choice(["KCNCOC", "GCHCIC"]), str(rng.randrange(1, 31)), *(str(rng.randrange(0, 500)) for _ in range(8))]


HOSTILE_FIELDS = ["-0", "007", "1.5", "2147483648", "99999999999999999999", "1e999", "nan", "inf", "", "NA", '"1"',
                  " 1", "1 ", "0x1F", "\ufeff1", "Ü", "-1", "NA ", "KC", "GCHCx", "1e300", "86400.5"]


def _hostile(rng: random.Random, fields: list[str], impressions: bool) -> bytes:
    fields = list(fields)
    kind = rng.randrange(17 if impressions else 7)
    if kind == 0:
        fields[rng.randrange(len(fields))] = rng.choice(HOSTILE_FIELDS)
    elif kind == 1:
        fields.append("extra")
    elif kind == 2:
        fields = fields[:-1]
    elif kind == 3:
        return ("\ufeff" + ",".join(fields)).encode()
    elif kind == 4:
        return (",".join(fields) + "\r").encode()
    elif kind == 5:
        return ",".join(fields).encode() + b"\xff"
    elif kind == 6:
        return b""
    else:  # a swipe-down list that is not as published
        change = [{"position": "-0"}, {"position": "07"}, {"mlogViewTime": "inf"}, {"isZan": "2"},
                  {"logtime": None}, {"mlogId": "U1"}, {"position": "2147483648"}, {"mlogViewTime": "-1"},
                  {"mlogViewTime": rng.choice(["86400.5", "1e300", "12345"])}][kind - 7 if kind < 16 else 0]
        entries = [_entry(rng), _entry(rng, **change)]
        fields[0] = '"[' + ", ".join(entries) + ']"' if kind != 16 else "\"[{'isZan': '0'}]\""
    return ",".join(fields).encode()


def _file(path: Path, spec: fmt.NcmFile, rng: random.Random, lines: int) -> Path:
    make = _impression if spec is fmt.IMPRESSIONS else _stats
    body = []
    for _ in range(lines):
        fields = make(rng)
        body.append(_hostile(rng, fields, spec is fmt.IMPRESSIONS) if rng.random() < 0.3 else ",".join(fields).encode())
        if rng.random() < 0.02:
            body.append(body[-1])  # a duplicate of the line before
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(",".join(spec.header).encode() + b"\n" + b"\n".join(body) + b"\n")
    return path


def _ingest(con, source: Path, spec: fmt.NcmFile, out: Path) -> tuple[str, int, int]:
    result = run_module.ingest(con, spec, [source], Lake(out), CAL, [CAL.day(d) for d in range(1, 31)])
    digest = hashlib.sha256()
    for f in sorted(out.rglob("*.parquet")):
        digest.update(str(f.relative_to(out)).encode() + f.read_bytes())
    return digest.hexdigest(), result.total_loaded, result.rows_quarantined


def _exact_only(monkeypatch) -> None:
    monkeypatch.setattr(FastLines, "split", lambda self, block: (None, block))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("spec", [fmt.IMPRESSIONS, fmt.MLOG_STATS], ids=lambda s: s.stem)
def test_fast_and_exact_paths_write_the_same_bytes(con, tmp_path, monkeypatch, spec, seed):
    source = _file(tmp_path / "src" / f"{spec.stem}.csv", spec, random.Random(seed), 3000)
    with_fast = _ingest(con, source, spec, tmp_path / "fast")
    taken = []
    original = FastLines.split
    monkeypatch.setattr(FastLines, "split", lambda self, block: taken.append(original(self, block)) or taken[-1])
    _ingest(con, source, spec, tmp_path / "counted")
    fast_rows = sum(t.num_rows for t, _ in taken if t is not None)
    # Of about 3,000 lines, 70 % are canonical, but those within 32 lines of bytes that are not UTF-8 go the
    # exact way with them (the pieces Arrow's UTF-8 check is halved down to): both paths carry hundreds.
    assert fast_rows >= 500
    _exact_only(monkeypatch)
    exact = _ingest(con, source, spec, tmp_path / "exact")
    assert with_fast == exact and exact[2] > 0


def test_a_broken_fast_path_is_caught(con, tmp_path, monkeypatch):
    source = _file(tmp_path / "src" / "impression_data.csv", fmt.IMPRESSIONS, random.Random(9), 2000)
    good = _ingest(con, source, fmt.IMPRESSIONS, tmp_path / "good")
    build = fast_module.detail_items

    def swapped(lists):  # a swipe-down entry's like and view-comment flags exchanged
        items = build(lists)
        values = items.values
        fields = {n: values.field(n) for n in values.type.names}
        fields["is_like"], fields["is_view_comment"] = fields["is_view_comment"], fields["is_like"]
        rebuilt = pa.StructArray.from_arrays(list(fields.values()), names=list(fields))
        return type(items).from_arrays(items.offsets, rebuilt, mask=items.is_null())

    monkeypatch.setitem(fast_module.STRUCTURED, "detail_list",
                        (fast_module.STRUCTURED["detail_list"][0], "detail_items", swapped))
    assert _ingest(con, source, fmt.IMPRESSIONS, tmp_path / "broken")[0] != good[0]


@pytest.mark.parametrize("line, canonical", [
    ("NA,3,1,1572700000000,0,0,0,0,0,0,KCNC,NA,PCNC", True),
    ("[],3,1,1572700000000,0,0,0,0,0,0,KCNC,1.0900000000000003,PCNC", True),
    ("NA,3,-0,1572700000000,0,0,0,0,0,0,KCNC,NA,PCNC", False),        # -0 goes the exact way
    ("NA,3,1234567890,1572700000000,0,0,0,0,0,0,KCNC,NA,PCNC", False),  # 10 digits may not fit 32 bits
    ("NA,3,1,1572700000000,0,0,0,0,0,2,KCNC,NA,PCNC", False),
    ("NA,3,1,1572700000000,0,0,0,0,0,0,KCNC,1e999,PCNC", False),
    ("NA,3,1,1572700000000,0,0,0,0,0,0,U1,NA,PCNC", False),
    ("NA,3,1,1572700000000,0,0,0,0,0,0,KCNC,NA,PCNC\r", False),
    ("\"[{'isZan': '0'}]\",3,1,1572700000000,0,0,0,0,0,0,KCNC,NA,PCNC", False),
])
def test_the_canonical_pattern_by_hand(line, canonical):
    pattern = canonical_pattern(fmt.IMPRESSIONS, list(fmt.IMPRESSIONS.columns))
    assert pc.match_substring_regex(pa.array([line]), pattern)[0].as_py() == canonical
