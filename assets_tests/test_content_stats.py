"""Card popularity, freshness and creator activity in the KPI features (mlog_stats, creator_stats), by hand.

Cohort 1 (observation dt 1..14, label dt 15..21) holds users A and B; cohort 8 holds C, whose window (dt 8..21)
covers cohort 1's label period, so building both cohorts in one run reads cohort 1's label-period stats.

Cards (publication dt = 31 - publishTime): C1 by K1 (dt 0), C2 by K2 (dt 1), C3 by K1 (dt -9), filler cards
F1..F8 by K3; X9 is missing from the card table. Card-day stats (impressions, clicks):

    dt 1: C1 100/10, C2 1000/50, F1..F8 1..8 impressions  -> C2 popular (cume_dist 1.0), C1 not (exactly 0.9)
    dt 2: C1 60/3, C2 500/20, C3 5/0                       -> C2 popular
    dt 3: C1 200/30 (C3 has no row)                        -> C1 popular
    dt 8: C1 70/14                                         -> C1 popular

Creator-day publications: K1 2 (dt 1), 0 (dt 2), 1 (dt 3), 7 (dt 5), 4 (dt 8); K2 1 (dt 1); K3 none.
"""

from __future__ import annotations

from math import isclose, log

import pyarrow.parquet as pq
import pytest
from conftest import CALENDAR, Imp, all_days, tid, write_impressions, write_snapshots
from pipeline_helpers import ingest_folder

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.stages.cohorts.sql import cohorts
from churn_dagster.stages.features.sql import features, window
from churn_dagster.stages.features.sql.content_stats import CONTENT_STATS_FEATURES
from churn_dagster.storage.lake import Lake

# The fixture's users and cards, as IDs of the published grammar (see conftest.tid).
A, B, C, C1, C2, C3, X9 = tid("A"), tid("B"), tid("C"), tid("C1"), tid("C2"), tid("C3"), tid("X9")
K1, K2, K3 = tid("K1"), tid("K2"), tid("K3")

COHORTS = [CALENDAR.day(1), CALENDAR.day(8)]
ANCHOR = 31
FILLERS = [tid(f"F{k}") for k in range(1, 9)]
CARD_STATS = [(C1, 1, 100, 10), (C2, 1, 1000, 50), *((f, 1, k, 0) for k, f in enumerate(FILLERS, start=1)),
              (C1, 2, 60, 3), (C2, 2, 500, 20), (C3, 2, 5, 0), (C1, 3, 200, 30), (C1, 8, 70, 14)]
CREATOR_STATS = [(K1, 1, 2), (K1, 2, 0), (K1, 3, 1), (K1, 5, 7), (K1, 8, 4), (K2, 1, 1)]
# Rows of cohort 1's label period (dt 15..21), read when cohort 8 is built in the same run.
LABEL_PERIOD_CARD_STATS = [(C1, 15, 99_999, 9_999), (C2, 20, 5, 5), (C3, 21, 1, 1)]
LABEL_PERIOD_CREATOR_STATS = [(K1, 15, 50), (K2, 21, 9)]


def _at(dt: int, hh: int = 10) -> str:
    return f"{CALENDAR.day(dt).isoformat()} {hh:02d}:00:00"


IMPRESSIONS = [
    Imp(A, _at(1), 1, card=C1),
    Imp(A, _at(1), 2, card=C2, click=True, view_time=5.0),
    Imp(A, _at(2), 1, card=X9),
    Imp(A, _at(3), 1, card=C1, click=True, view_time=5.0),
    Imp(A, _at(3), 2, card=C3),
    Imp(B, _at(1), 1, card=C2),
    Imp(B, _at(2), 1, card=C2),
    Imp(C, _at(8), 1, card=C1, click=True, view_time=5.0),
    Imp(C, _at(15), 1, card=C1),  # inside C's window, in cohort 1's label period
]


def _write_source(folder, card_stats, creator_stats) -> None:
    write_impressions(folder, IMPRESSIONS)
    write_snapshots(folder, [A, B, C])
    quoted = lambda cols: ",".join(f'"{c}"' for c in cols)  # noqa: E731
    cards = [(C1, K1, 31), (C2, K2, 30), (C3, K1, 40), *((f, K3, 50) for f in FILLERS)]
    (folder / "mlog_demographics.csv").write_text(quoted(fmt.MLOG_DEMOGRAPHICS.header) + "\n" + "".join(
        f'"{m}","AFBHAHLH","AFBHAHLH","{k}",{p},1,"5000,5006,5036",-1\n' for m, k, p in cards))
    (folder / "creator_demographics.csv").write_text(quoted(fmt.CREATOR_DEMOGRAPHICS.header) + "\n" + "".join(
        f'"{k}","",30,5,9,0,7\n' for k in (K1, K2, K3)))
    (folder / "mlog_stats.csv").write_text(",".join(fmt.MLOG_STATS.header) + "\n" + "".join(
        f"{m},{dt},{imp},{clk},0,0,0,0,0,0\n" for m, dt, imp, clk in card_stats))
    (folder / "creator_stats.csv").write_text(quoted(fmt.CREATOR_STATS.header) + "\n" + "".join(
        f'"{k}",{dt},{n}\n' for k, dt, n in creator_stats))


def _build(tmp_path, con, name: str, extra_cards=(), extra_creators=(), use_content_stats: bool = True):
    src = tmp_path / f"src_{name}"
    _write_source(src, [*CARD_STATS, *extra_cards], [*CREATOR_STATS, *extra_creators])
    lake = Lake(tmp_path / f"lake_{name}")
    ingest_folder(con, src, lake)
    for day in all_days():
        cohorts.build_user_day_activity(con, lake, day)
    cohorts.build_cohort_users(con, lake, CALENDAR, COHORTS)
    window.build_window_impressions(con, lake, CALENDAR, COHORTS)
    features.build_kpi_features(con, lake, CALENDAR, COHORTS, ANCHOR, use_content_stats=use_content_stats)
    return lake


def _table(lake, cohort):
    return pq.read_table(lake.cohort("kpi_features", cohort)).to_pandas().set_index("user_id")


@pytest.fixture
def lake(tmp_path, con):
    return _build(tmp_path, con, "base")


def test_card_popularity_freshness_and_creator_activity_by_hand(lake):
    a = _table(lake, COHORTS[0]).loc[A]
    # Five impressions; X9 has no card row and no stats, C3 no stats row on dt 3.
    assert isclose(a["card_stats_coverage"], 3 / 5)
    assert isclose(a["mean_card_log_day_impressions"], (log(101) + log(1001) + log(201)) / 3)
    assert isclose(a["popular_card_share"], (0 + 1 + 1) / 3)
    # CTR of each card over dt 1 .. the impression's day: C1 on dt 1 10/100, C2 on dt 1 50/1000,
    # C1 on dt 3 (10+3+30)/(100+60+200), C3 on dt 3 0/5 (its dt-2 row); X9 has none.
    assert isclose(a["mean_card_window_ctr"], (10 / 100 + 50 / 1000 + 43 / 360 + 0 / 5) / 4)
    assert isclose(a["clicked_card_mean_log_day_impressions"], (log(1001) + log(201)) / 2)
    assert isclose(a["clicked_card_mean_age_days"], ((1 - 1) + (3 - 0)) / 2)
    # Publications per day over dt 1 .. d: K1 by dt 1 2/1, K2 by dt 1 1/1, K1 by dt 3 (2+0+1)/3 (twice).
    assert isclose(a["mean_creator_log_publish_rate"], (log(1 + 2) + log(1 + 1) + 2 * log(1 + 1)) / 4)
    assert isclose(a["clicked_creator_log_publish_rate"], (log(1 + 1) + log(1 + 1)) / 2)


def test_a_user_without_clicks_has_no_clicked_card_values(lake):
    b = _table(lake, COHORTS[0]).loc[B]
    assert b["card_stats_coverage"] == 1.0 and b["popular_card_share"] == 1.0
    assert isclose(b["mean_card_window_ctr"], (50 / 1000 + (50 + 20) / (1000 + 500)) / 2)
    # K2 published one card on dt 1: one a day by dt 1, half a day by dt 2.
    assert isclose(b["mean_creator_log_publish_rate"], (log(1 + 1) + log(1 + 1 / 2)) / 2)
    for column in ("clicked_card_mean_log_day_impressions", "clicked_card_mean_age_days",
                   "clicked_creator_log_publish_rate"):
        assert b.isna()[column], column  # missing, not zero: imputed by the models on their training users


def test_a_later_cohort_counts_only_its_own_days(lake):
    """C's first day is dt 8: C1's dt 1-3 stats and K1's dt 1-5 publications are before the window."""
    c = _table(lake, COHORTS[1]).loc[C]
    assert isclose(c["clicked_card_mean_log_day_impressions"], log(71))
    assert isclose(c["mean_card_window_ctr"], (14 / 70 + 14 / 70) / 2)  # dt 15 has no C1 row: still 14/70
    assert isclose(c["clicked_creator_log_publish_rate"], log(1 + 4))
    assert isclose(c["mean_creator_log_publish_rate"], (log(1 + 4) + log(1 + 4 / 8)) / 2)
    assert isclose(c["card_stats_coverage"], 1 / 2)


def test_label_period_stats_change_no_feature_of_the_cohort(tmp_path, con, lake):
    leaky = _build(tmp_path, con, "leaky", LABEL_PERIOD_CARD_STATS, LABEL_PERIOD_CREATOR_STATS)
    assert lake.cohort("kpi_features", COHORTS[0]).read_bytes() == leaky.cohort("kpi_features", COHORTS[0]).read_bytes()
    # The same rows are inside cohort 8's window, and there they count (C saw C1 on dt 15).
    c = _table(leaky, COHORTS[1]).loc[C]
    assert isclose(c["mean_card_window_ctr"], (14 / 70 + (14 + 9_999) / (70 + 99_999)) / 2)
    assert isclose(c["card_stats_coverage"], 1.0)


def test_switched_off_the_columns_are_absent_and_the_others_unchanged(tmp_path, con, lake):
    off = _build(tmp_path, con, "off", use_content_stats=False)
    for cohort in COHORTS:
        with_stats, without = _table(lake, cohort), _table(off, cohort)
        assert not set(CONTENT_STATS_FEATURES) & set(without.columns)
        assert list(with_stats.drop(columns=list(CONTENT_STATS_FEATURES)).columns) == list(without.columns)
        assert with_stats[list(without.columns)].equals(without)


def test_a_cohort_built_alone_writes_the_same_bytes(tmp_path, con, lake):
    alone = Lake(tmp_path / "lake_alone")
    src = tmp_path / "src_alone"
    _write_source(src, CARD_STATS, CREATOR_STATS)
    ingest_folder(con, src, alone)
    for day in all_days():
        cohorts.build_user_day_activity(con, alone, day)
    cohorts.build_cohort_users(con, alone, CALENDAR, COHORTS[:1])
    window.build_window_impressions(con, alone, CALENDAR, COHORTS[:1])
    features.build_kpi_features(con, alone, CALENDAR, COHORTS[:1], ANCHOR)
    assert alone.cohort("kpi_features", COHORTS[0]).read_bytes() == lake.cohort("kpi_features", COHORTS[0]).read_bytes()
