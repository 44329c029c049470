"""The synthetic generator writes files a loader of the real data cannot tell apart by format.

Every check reads the written files back (bytes, the csv module, DuckDB), never the generator's arrays. Where the
real heads are available (``ncm_head_10k``), headers and line patterns are compared with them too.
"""

from __future__ import annotations

import ast
import csv
import datetime as dt
import gzip
import io
import os
import re
from pathlib import Path

import duckdb
import numpy as np
import pytest

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.synth import ids
from churn_dagster.synth.calibrate import (
    calibration_report,
    format_report,
    read_view_sql,
)
from churn_dagster.synth.generator import generate
from churn_dagster.synth.predictability import predictability

REPO = Path(__file__).resolve().parents[1]
START = dt.date(2019, 11, 1)
TOKEN = r"(?:[G-P]C)+"
ID = re.compile(rf"^{TOKEN}$")

# One data line of each file; the same patterns must also hold for the real heads.
LINE_PATTERNS = {
    "impression_data": rf'^(NA|\[\]|"\[\{{.*\}}\]"),\d+,\d+,\d+000,[01],[01],[01],[01],[01],[01],{TOKEN},'
    rf"(NA|\d+(\.\d+)?),{TOKEN}$",
    "user_demographics": rf"^{TOKEN},([a-z]+( [a-z]+)*)?,(\d+)?,(male|female|unknown)?,(\d+)?,(\d+)?,(\d+)?$",
    "mlog_demographics": rf'^"{TOKEN}","({TOKEN}|AFBHAHLH)","({TOKEN}|AFBHAHLH)","{TOKEN}",\d+,[12],'
    rf'"(\d+,\d+,\d+)?",-?\d+\r$',
    "mlog_stats": rf"^{TOKEN},\d+(,\d+){{8}}$",
    "creator_demographics": rf'^"{TOKEN}","(male|female|unknown)?",\d+,\d+,\d+,\d+,\d+\r$',
    "creator_stats": rf'^"{TOKEN}",\d+,\d+\r$',
}


def _real_heads() -> Path | None:
    candidates = [os.environ.get("NCM_HEAD_10K"), REPO / "shared/data/ncm_head_10k", "/work/shared/data/ncm_head_10k"]
    return next((Path(c) for c in candidates if c and (Path(c) / "impression_data.csv").exists()), None)


def _lines(path: Path) -> list[bytes]:
    """Lines without the final LF (a CR before it is kept, so CRLF files show it)."""
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_small")
    return generate(out, users=3000, seed=0)


@pytest.fixture(scope="module")
def con(small):
    connection = duckdb.connect()
    for f in fmt.ALL_FILES:
        connection.execute(f"CREATE VIEW {f.stem} AS {read_view_sql(small.out_dir, f)}")
    connection.execute(
        f"""CREATE TABLE imp_order AS SELECT row_number() OVER () AS row_no, *
            FROM read_csv('{small.paths['impression_data']}', header = true, nullstr = 'NA', all_varchar = true)"""
    )
    yield connection
    connection.close()


def _one(con, sql: str):
    return con.execute(sql).fetchone()[0]


# --- determinism and compression -------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_other_seed_differs(small, tmp_path):
    again = generate(tmp_path / "again", users=3000, seed=0)
    other = generate(tmp_path / "other", users=3000, seed=1)
    for f in fmt.ALL_FILES:
        assert again.paths[f.stem].read_bytes() == small.paths[f.stem].read_bytes(), f.stem
    assert other.paths["impression_data"].read_bytes() != small.paths["impression_data"].read_bytes()
    assert not list((tmp_path / "again").glob(".*")), "temporary files left behind"


def test_gz_output_is_the_same_content(small, tmp_path):
    packed = generate(tmp_path, users=3000, seed=0, compress=True)
    for f in fmt.ALL_FILES:
        path = packed.paths[f.stem]
        assert path.name == f"{f.stem}.csv.gz"
        assert gzip.decompress(path.read_bytes()) == small.paths[f.stem].read_bytes(), f.stem
    rows = duckdb.execute(f"SELECT count(*) FROM ({read_view_sql(tmp_path, fmt.IMPRESSIONS)})").fetchone()[0]
    assert rows == packed.rows["impression_data"]


def test_summary_counts_match_the_files(small):
    for f in fmt.ALL_FILES:
        assert len(_lines(small.paths[f.stem])) - 1 == small.rows[f.stem], f.stem
    assert small.rows["impression_data"] > 3000 * 5


# --- exact format ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("f", fmt.ALL_FILES, ids=lambda f: f.stem)
def test_header_is_the_declared_one(small, f):
    expected = ",".join(f'"{h}"' if f.quote_strings else h for h in f.header) + f.line_terminator
    with open(small.paths[f.stem], "rb") as handle:
        assert handle.readline() == expected.encode()


@pytest.mark.parametrize("f", fmt.ALL_FILES, ids=lambda f: f.stem)
def test_header_equals_the_real_head(small, f):
    heads = _real_heads()
    if heads is None:
        pytest.skip("real heads (ncm_head_10k) not available; set NCM_HEAD_10K to their folder to compare")
    with open(heads / f"{f.stem}.csv", "rb") as real, open(small.paths[f.stem], "rb") as ours:
        assert ours.readline() == real.readline()


@pytest.mark.parametrize("stem", LINE_PATTERNS)
def test_every_line_has_the_real_quoting_pattern(small, stem):
    pattern = re.compile(LINE_PATTERNS[stem].encode())
    bad = [line for line in _lines(small.paths[stem])[1:] if not pattern.match(line)]
    assert not bad, bad[:3]
    heads = _real_heads()
    if heads is not None:  # the pattern itself is checked against the real file
        real_bad = [line for line in _lines(heads / f"{stem}.csv")[1:] if not pattern.match(line)]
        assert not real_bad, real_bad[:3]


def test_view_times_look_like_the_real_column(small):
    rows = list(csv.reader(io.StringIO(small.paths["impression_data"].read_text())))[1:]
    clicked = [r[11] for r in rows if r[4] == "1"]
    assert sum(r[11] != "NA" for r in rows if r[4] == "0") / len(rows) < 0.001  # almost always NA without a click
    missing = sum(v == "NA" for v in clicked) / len(clicked)
    assert 0.01 < missing < 0.06
    decimals = [len(v.split(".")[1]) for v in clicked if "." in v]
    assert max(decimals) >= 15 and np.mean(np.array(decimals) > 2) < 0.05  # float artefacts, but rare
    assert any("." not in v and v != "NA" for v in clicked)  # whole values are written without ".0"


# --- invariants -------------------------------------------------------------------------------------------------


def test_ids_match_the_token_alphabet_and_are_unique(con):
    for table, column, lengths in [
        ("user_demographics", "user_id", range(12, 21)),
        ("mlog_demographics", "mlog_id", (12, 14)),
        ("creator_demographics", "creator_id", range(10, 21)),
    ]:
        values = [v for (v,) in con.execute(f"SELECT {column} FROM {table}").fetchall()]
        assert len(values) == len(set(values)), table
        assert all(ID.match(v) and len(v) in lengths for v in values), table
    for table, column in [("impression_data", "user_id"), ("impression_data", "mlog_id"), ("mlog_stats", "mlog_id"),
                          ("creator_stats", "creator_id"), ("mlog_demographics", "creator_id")]:
        assert _one(con, f"SELECT count(*) FROM {table} WHERE NOT regexp_full_match({column}, '{TOKEN}')") == 0


def test_make_ids_is_unique_even_when_a_length_class_overflows():
    artists = ids.make_ids(50_000, ids.ARTIST_IDS, np.random.default_rng(3)).to_pylist()
    assert len(set(artists)) == len(artists) and all(ID.match(a) for a in artists)


def test_dt_is_the_shanghai_day_and_times_are_whole_seconds(con):
    first_day = (START - dt.date(1970, 1, 1)).days
    assert _one(con, "SELECT count(*) FROM impression_data WHERE impress_time_ms % 1000 <> 0") == 0
    assert _one(
        con,
        f"""SELECT count(*) FROM impression_data
            WHERE dt <> (impress_time_ms // 1000 + {fmt.SHANGHAI_UTC_OFFSET_SECONDS}) // 86400 - {first_day} + 1""",
    ) == 0
    assert _one(con, "SELECT min(dt) >= 1 AND max(dt) <= 30 FROM impression_data")


def test_actions_only_after_a_click(con):
    assert _one(
        con,
        """SELECT count(*) FROM impression_data WHERE NOT is_click
           AND (is_comment OR is_into_homepage OR is_share OR is_view_comment OR is_like OR detail_list IS NOT NULL)""",
    ) == 0


def test_detail_lists_parse_with_the_real_keys(con):
    rows = con.execute(
        "SELECT detail_list, impress_time_ms, mlog_id FROM impression_data WHERE detail_list IS NOT NULL"
    ).fetchall()
    clicked = _one(con, "SELECT count(*) FROM impression_data WHERE is_click")
    assert 0.2 < len(rows) / clicked < 0.4
    for text, time_ms, parent in rows:
        entries = ast.literal_eval(text)
        assert isinstance(entries, list)
        for entry in entries:
            assert tuple(entry) == fmt.DETAIL_LIST_KEYS
            assert all(isinstance(v, str) for v in entry.values())
            assert int(entry["position"]) >= 2 and entry["mlogId"] != parent
            assert 7_000 <= int(entry["logtime"]) - time_ms <= 3_675_000 and entry["logtime"].endswith("000")


def test_impressions_grouped_by_user_but_not_time_ordered(con):
    changes = _one(
        con,
        """SELECT count(*) FROM (SELECT userId <> lag(userId) OVER (ORDER BY row_no) AS new_user FROM imp_order)
           WHERE new_user""",
    )
    assert changes == _one(con, "SELECT count(DISTINCT userId) FROM imp_order") - 1
    backwards = _one(
        con,
        """SELECT avg((t < prev)::INT) FROM (
             SELECT impressTime::BIGINT AS t, lag(impressTime::BIGINT) OVER (ORDER BY row_no) AS prev,
                    userId = lag(userId) OVER (ORDER BY row_no) AS same FROM imp_order) WHERE same""",
    )
    assert 0.25 < backwards < 0.6


def test_feed_batches_and_positions(con):
    sizes = dict(
        con.execute(
            """SELECT least(n, 5), count(*) / sum(count(*)) OVER () FROM
               (SELECT user_id, impress_time_ms, count(*) AS n FROM impression_data GROUP BY ALL) GROUP BY 1"""
        ).fetchall()
    )
    for size, real in {1: 0.30, 2: 0.20, 3: 0.16, 4: 0.25, 5: 0.09}.items():
        assert abs(sizes[size] - real) < 0.05, (size, sizes)
    zero = _one(con, "SELECT avg((impress_position = 0)::INT) FROM impression_data")
    assert 0.02 < zero < 0.08
    shallow, deep = con.execute(
        """SELECT avg(is_click::INT) FILTER (WHERE impress_position BETWEEN 1 AND 4),
                  avg(is_click::INT) FILTER (WHERE impress_position >= 7) FROM impression_data"""
    ).fetchone()
    assert deep > 1.5 * shallow


def test_cards_exist_and_stats_cover_the_sample(con):
    orphans = _one(
        con, "SELECT avg((m.mlog_id IS NULL)::INT) FROM impression_data LEFT JOIN mlog_demographics m USING (mlog_id)"
    )
    assert orphans < 0.002
    assert _one(con, "SELECT count(*) - count(DISTINCT (user_id, impress_time_ms, mlog_id)) FROM impression_data") == 0
    any_null = " OR ".join(f"{c.name} IS NULL" for c in fmt.MLOG_STATS.columns)
    assert _one(con, f"SELECT count(*) FROM mlog_stats WHERE {any_null}") == 0
    assert _one(con, "SELECT min(user_impression_count) FROM mlog_stats") >= 1
    assert _one(
        con,
        """SELECT count(*) FROM (SELECT mlog_id, dt, count(*) AS n FROM impression_data GROUP BY ALL) s
           JOIN mlog_demographics USING (mlog_id) LEFT JOIN mlog_stats m USING (mlog_id, dt)
           WHERE m.user_impression_count IS NULL OR m.user_impression_count < s.n""",
    ) == 0


def test_card_and_creator_tables(con):
    no_song = f"'{fmt.NO_SONG_SENTINEL}' IN (song_id, artist_id)"
    assert _one(con, f"SELECT count(*) FROM mlog_demographics WHERE type = 1 AND {no_song}") == 0
    assert _one(con, f"SELECT count(*) FROM mlog_demographics WHERE type = 2 AND {no_song}") > 0
    assert _one(con, "SELECT count(*) FROM mlog_demographics ANTI JOIN creator_demographics USING (creator_id)") == 0
    assert _one(con, "SELECT min(publish_time) >= 2 AND max(publish_time) <= 217 FROM mlog_demographics")
    # creator_stats: dt blocks, not in chronological order; counts agree with the card table
    blocks = [d for (d,) in con.execute("SELECT dt FROM creator_stats").fetchall()]
    order = [d for i, d in enumerate(blocks) if i == 0 or d != blocks[i - 1]]
    assert len(order) == len(set(order)) == 30 and order != sorted(order)
    assert _one(con, "SELECT sum(publish_mlog_count) FROM creator_stats") == _one(
        con, "SELECT count(*) FROM mlog_demographics WHERE publish_time <= 30"
    )


def test_user_table_missingness(con):
    assert _one(con, "SELECT count(*) FROM user_demographics WHERE (age IS NULL) <> (gender IS NULL)") == 0
    missing = _one(con, "SELECT avg((age IS NULL)::INT) FROM user_demographics")
    assert 0.3 < missing < 0.41
    assert _one(
        con, "SELECT count(*) FROM user_demographics WHERE province IS NULL AND registered_month_cnt IS NOT NULL"
    ) == 0
    assert _one(
        con,
        "SELECT count(*) FROM user_demographics WHERE user_id NOT IN (SELECT user_id FROM impression_data)",
    ) == 0


# --- behaviour --------------------------------------------------------------------------------------------------


def test_calibration_and_predictability_on_a_moderate_set(tmp_path):
    """40k users: calibrated figures sit within +-13% at 200k users; at 40k the cohort holds ~16k users, the
    Champion count ~200 (Poisson sd ~7%), so +-35% leaves room for sampling noise but catches a broken model."""
    generate(tmp_path, users=40_000, seed=0)
    figures = calibration_report(tmp_path)
    assert all(abs(f.relative_error) < 0.35 for f in figures), format_report(figures)
    numbers = predictability(tmp_path)
    assert 0.70 < numbers["AUC impressions in window"] < 0.85
    assert numbers["AUC logistic, totals + trend (held out)"] > numbers["AUC logistic, totals (held out)"]
    assert numbers["same, within equal window active days"] > 0.52
