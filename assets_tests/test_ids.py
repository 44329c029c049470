"""Identifiers are checked against the published ID grammar in every file that has them: a value that only
looks like an ID (a space, a tab, a non-breaking or zero-width space, a look-alike letter, a lower-case token,
10,000 characters) is quarantined with its column named, never loaded as a new user, card or creator."""

from __future__ import annotations

import re

import pytest
from conftest import CALENDAR, REAL_HEAD, Imp, all_days, tid
from pipeline_helpers import cohorts_from_impressions, ingest_folder, rows

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.stages.cohorts.sql import labels
from churn_dagster.stages.ingest.sql import ingest
from churn_dagster.storage.lake import Lake
from churn_dagster.synth.generator import generate

USER = tid("U1")  # ICHCHC
HOSTILE = {
    "leading space": " " + USER,
    "trailing space": USER + " ",
    "non-breaking space": USER + "\u00a0",
    "zero-width space": USER[:2] + "\u200b" + USER[2:],
    "tab": USER + "\t",
    "Cyrillic Es for C": USER[:-1] + "\u0421",
    "full-width G": "\uff27C" + USER[2:],
    "lower case": USER.lower(),
    "10,000 characters": "GC" * 5000,
    "11 digits": "HC" * 11,
    "half a token": USER + "G",
    "plain digits": "211",
    "a readable label": "U1",
}
ID_REASON = "is not an ID as published (1 to 10 tokens, each a letter G..P followed by C)"


def _quarantined(con, lake, stem: str) -> list[dict]:
    return sorted((r for f in (lake.root / "quarantine" / stem).rglob("*.parquet") for r in rows(con, f)),
                  key=lambda r: r["line"])


def _load(tmp_path, lake, con, spec: fmt.NcmFile, lines: list[str]):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    header = ",".join(f'"{h}"' if spec.quote_strings else h for h in spec.header)
    path = src / f"{spec.stem}.csv"
    path.write_text(header + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return ingest(con, spec, [path], lake, CALENDAR, all_days() if spec.daily else None)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_user_id_outside_the_grammar_is_quarantined_with_its_column(tmp_path, lake, con, case):
    good = Imp(USER, "2019-11-01 10:00:00")
    bad = Imp(HOSTILE[case], "2019-11-01 10:05:00")
    result = _load(tmp_path, lake, con, fmt.IMPRESSIONS, [good.csv_line(), bad.csv_line()])
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (2, 1, 1), case
    (row,) = _quarantined(con, lake, "impression_data")
    assert (row["line"], row["column_name"], row["reason"]) == (3, "userId", f"userId {ID_REASON}")
    assert [r["user_id"] for r in rows(con, lake.raw_day("impression_data", CALENDAR.day(1)))] == [USER]


# (file, a good line, the ID column to spoil, its position in the line)
EVERY_ID_COLUMN = [
    (fmt.IMPRESSIONS, Imp(USER, "2019-11-01 10:00:00").csv_line(), "mlogId", 10),
    (fmt.USER_DEMOGRAPHICS, f"{USER},guang dong,21,female,12,5,6", "userId", 0),
    (fmt.MLOG_DEMOGRAPHICS, '"GCHCIC","HCIC","JCKC","LCMC",20,1,"5000,5006,5036",-1', "mlogId", 0),
    (fmt.MLOG_DEMOGRAPHICS, '"GCHCIC","HCIC","JCKC","LCMC",20,1,"5000,5006,5036",-1', "songId", 1),
    (fmt.MLOG_DEMOGRAPHICS, '"GCHCIC","HCIC","JCKC","LCMC",20,1,"5000,5006,5036",-1', "artistId", 2),
    (fmt.MLOG_DEMOGRAPHICS, '"GCHCIC","HCIC","JCKC","LCMC",20,1,"5000,5006,5036",-1', "creatorId", 3),
    (fmt.MLOG_STATS, "GCHCIC,1,10,1,0,0,0,0,0,0", "mlogId", 0),
    (fmt.CREATOR_DEMOGRAPHICS, '"LCMC","",30,5,9,0,7', "creatorId", 0),
    (fmt.CREATOR_STATS, '"LCMC",1,1', "creatorId", 0),
]


@pytest.mark.parametrize(("spec", "good", "column", "position"), EVERY_ID_COLUMN,
                         ids=[f"{s.stem}.{c}" for s, _, c, _ in EVERY_ID_COLUMN])
@pytest.mark.parametrize("case", ["trailing space", "zero-width space", "Cyrillic Es for C", "10,000 characters"])
def test_every_id_column_of_every_file_has_the_grammar(tmp_path, lake, con, spec, good, column, position, case):
    fields = good.split(",") if spec is not fmt.MLOG_DEMOGRAPHICS else re.findall(r'"[^"]*"|[^,]+', good)
    value = HOSTILE[case]
    fields[position] = f'"{value}"' if fields[position].startswith('"') else value
    result = _load(tmp_path, lake, con, spec, [good, ",".join(fields)])
    assert (result.total_loaded, result.rows_quarantined) == (1, 1), (spec.stem, column, case)
    (row,) = _quarantined(con, lake, spec.stem)
    assert (row["line"], row["column_name"]) == (3, column)
    assert row["reason"].startswith(f"{column} {ID_REASON}")


def test_the_no_song_sentinel_is_an_id_only_where_it_is_published(tmp_path, lake, con):
    lines = ['"GCHCIC","AFBHAHLH","AFBHAHLH","LCMC",20,2,"5000,5006,5036",-1',  # a video: no song, as published
             '"GCHCJC","HCIC","JCKC","AFBHAHLH",20,1,"",-1',  # not a creator
             '"GCHCKC","HCIC","JCKC","LCMC",20,1,"5000, 5006,5036",-1',  # a space in the category path
             '"GCHCLC","HCIC","JCKC","LCMC",20,1,"5000,5006",-1']  # two levels, not three
    result = _load(tmp_path, lake, con, fmt.MLOG_DEMOGRAPHICS, lines)
    assert (result.total_loaded, result.rows_quarantined) == (1, 3)
    assert [(r["line"], r["column_name"]) for r in _quarantined(con, lake, "mlog_demographics")] == [
        (3, "creatorId"), (4, "contentId"), (5, "contentId")]
    assert _quarantined(con, lake, "mlog_demographics")[1]["reason"] == (
        "contentId is not a category path as published (three comma-separated numbers such as 5001,5010,5054)")


def test_a_card_id_inside_a_swipe_down_list_has_the_grammar_too(tmp_path, lake, con):
    entry = ("{'isZan': '0', 'isComment': '0', 'mlogId': '%s', 'isIntoPersonalHomepage': '0', 'mlogViewTime': '1.4', "
             "'isShare': '0', 'isViewComment': '0', 'position': '2', 'logtime': '1572573700000'}")
    listed = [Imp(USER, "2019-11-01 10:00:00", p, click=True, view_time=1.0, detail=f"[{entry % card}]").csv_line()
              for p, card in ((1, "KCGC"), (2, "KCGC "), (3, "KC\u200bGC"))]
    result = _load(tmp_path, lake, con, fmt.IMPRESSIONS, listed)
    assert (result.total_loaded, result.rows_quarantined) == (1, 2)
    assert {(r["column_name"], r["reason"]) for r in _quarantined(con, lake, "impression_data")} == {
        ("detailMlogInfoList", "detailMlogInfoList has an entry whose values are not as published")}


def test_look_alike_users_never_become_phantom_cohort_users_with_labels(tmp_path, lake, con):
    """Four spellings of one user (a real ID and four look-alikes) were five users with five labels."""
    look_alikes = [HOSTILE[c] for c in ("trailing space", "non-breaking space", "zero-width space", "Cyrillic Es for C")]
    imps = [Imp(USER, "2019-11-01 10:00:00")] + [Imp(u, "2019-11-01 11:00:00") for u in look_alikes]
    cohorts_from_impressions(tmp_path, lake, con, imps, [CALENDAR.day(1)])
    labels.build_splits(con, lake, [CALENDAR.day(1)], labels.SplitSettings())
    labels.build_labels(con, lake, CALENDAR, [CALENDAR.day(1)])
    assert [r["user_id"] for r in rows(con, lake.cohort("cohort_users", CALENDAR.day(1)))] == [USER]
    assert [r["user_id"] for r in rows(con, lake.cohort("label_scores", CALENDAR.day(1)))] == [USER]


def test_the_grammar_admits_every_id_of_the_real_heads_and_of_the_generator(tmp_path, lake, con):
    """Both sources write only IDs of the grammar: every line of the six files loads (the real heads' lengths
    run from 2 characters, an artistId, to 20; they are checked where they ship beside the repository)."""
    generate(tmp_path / "synthetic", users=300, seed=5)
    sources = [tmp_path / "synthetic", *([REAL_HEAD] if REAL_HEAD.exists() else [])]
    for number, source in enumerate(sources):
        results = ingest_folder(con, source, Lake(tmp_path / f"lake{number}"))
        assert {stem: r.rows_quarantined for stem, r in results.items()} == dict.fromkeys(results, 0), source
        assert all(r.total_loaded == r.rows_read > 0 for r in results.values()), source
    assert re.fullmatch(fmt.ID_GRAMMAR.pattern, "OC") and re.fullmatch(fmt.ID_GRAMMAR.pattern, "PC" * 10)
    assert not re.fullmatch(fmt.ID_GRAMMAR.pattern, "PC" * 11)
