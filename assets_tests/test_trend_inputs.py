"""The trend models' inputs read the first trend period alone, against a hand-worked example.

Calendar of 30 days, observation window 14 days; trend periods 10 + 10: for cohort dt 1, period 1 is dt 1..10
and period 2 dt 11..20, whose first four days lie inside the observation window. Cards: V1 a music video, P1
an image set. Times Asia/Shanghai:

    A  dt 1  10:00  V1 clicked (20 s)                                      period 1, session 1
       dt 10 23:50  P1 clicked (3 s), swipe-down entries at 23:55 (dt 10)
                    and 00:05 (dt 11, liked)                               period 1, session 2 (one entry)
       dt 11 00:10  P1 shown: 20 minutes after 23:50                       period 2 (the observation window's
       dt 12 09:00  V1 clicked and liked (9 s)                             session 2 continues, then session 3)
    B  dt 1  12:00  P1 shown                                               period 1
    C  dt 1  08:00  P1 shown;  dt 14 23:55 P1 clicked, swipe-down entries
                    at 23:58 (dt 14) and 00:05 (dt 15, the churn label period)

    table (trend_inputs/, cohort dt 1)      A                          observation window (cohorts/), A
    sessions                                2: 1 + 1 impressions        3: 1 + 2 + 1 impressions
    session 2's events                      1 click, 1 swipe view        (2 impressions)
    user_day_events                         10 days, impressions 1 on day 1 and 1 on day 10
    KPI: impressions, clicks, likes         2, 2, 0                     4, 3, 1
    KPI: swipe_items                        1 (the 00:05 entry is period 2)   2
    KPI: first / second half (5 + 5 days)   1 / 1 impressions

C's dt-15 entry is the churn label period's: the churn KPIs count only the 23:58 entry.
"""

from __future__ import annotations

from conftest import CALENDAR, Imp, tid, write_impressions, write_snapshots
from pipeline_helpers import ingest_folder, rows

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.stages.cohorts.sql import cohorts
from churn_dagster.stages.features.sql import features, sessions, window
from churn_dagster.studies.trends.sql import session_events
from churn_dagster.studies.trends.sql.inputs import build_trend_inputs, first_period_calendar
from churn_dagster.studies.trends.sql.session_events import EVENT_COLUMNS
from churn_dagster.studies.trends.sql.trends import TrendSettings

COHORT = CALENDAR.day(1)
PERIODS = TrendSettings(10, 10)
A, B, C = (tid(u) for u in "ABC")
V1, P1 = tid("V1"), tid("P1")


def _at(dt: int, hh: int, mm: int = 0) -> str:
    return f"{CALENDAR.day(dt).isoformat()} {hh:02d}:{mm:02d}:00"


def _detail(*entries: tuple[str, int, int, int, bool]) -> str:
    """A swipe-down list as published: (card, dt, hour, minute, liked) per entry."""
    def entry(position: int, card: str, dt: int, hh: int, mm: int, liked: bool) -> str:
        values = {"isZan": "1" if liked else "0", "isComment": "0", "mlogId": card, "isIntoPersonalHomepage": "0",
                  "mlogViewTime": "4.5", "isShare": "0", "isViewComment": "0", "position": str(position),
                  "logtime": str(Imp("x", _at(dt, hh, mm)).epoch_ms)}
        return "{" + ", ".join(f"'{k}': '{values[k]}'" for k in fmt.DETAIL_LIST_KEYS) + "}"

    return "[" + ", ".join(entry(k + 2, *e) for k, e in enumerate(entries)) + "]"


LOG = [
    Imp(A, _at(1, 10), card=V1, click=True, view_time=20.0),
    Imp(A, _at(10, 23, 50), card=P1, click=True, view_time=3.0,
        detail=_detail((V1, 10, 23, 55, False), (V1, 11, 0, 5, True))),
    Imp(A, _at(11, 0, 10), card=P1),
    Imp(A, _at(12, 9), card=V1, click=True, like=True, view_time=9.0),
    Imp(B, _at(1, 12), card=P1),
    Imp(C, _at(1, 8), card=P1),
    Imp(C, _at(14, 23, 55), card=P1, click=True, view_time=2.0,
        detail=_detail((V1, 14, 23, 58, False), (V1, 15, 0, 5, False))),
]


def _build(tmp_path, lake, con):
    src = tmp_path / "src"
    write_impressions(src, LOG)
    write_snapshots(src, [A, B, C])
    quoted = ",".join(f'"{c}"' for c in fmt.MLOG_DEMOGRAPHICS.header)
    (src / "mlog_demographics.csv").write_text(
        f'{quoted}\n"{V1}","AFBHAHLH","AFBHAHLH","HCHC",20,2,"5001,5010,5054",-1\n'
        f'"{P1}","GC","GC","HCHC",20,1,"5000,5006,5036",-1\n'
    )
    ingest_folder(con, src, lake)
    for d in range(1, CALENDAR.num_days + 1):
        cohorts.build_user_day_activity(con, lake, CALENDAR.day(d))
    cohorts.build_cohort_users(con, lake, CALENDAR, [COHORT])
    window.build_window_impressions(con, lake, CALENDAR, [COHORT])
    sessions.build_sessions(con, lake, CALENDAR, [COHORT], gap_minutes=30)
    features.build_kpi_features(con, lake, CALENDAR, [COHORT], publish_day_anchor=31)
    written = build_trend_inputs(con, lake, CALENDAR, PERIODS, [COHORT], gap_minutes=30, publish_day_anchor=31)
    return written, lake.trend_inputs()


def _by_user(con, path, order="ORDER BY user_id") -> dict:
    found: dict = {}
    for r in rows(con, path, order):
        found.setdefault(r["user_id"], []).append(r)
    return found


def test_the_first_period_calendar_is_period_one_then_period_two():
    period = first_period_calendar(CALENDAR, PERIODS)
    assert list(period.observation_dts(COHORT)) == list(range(1, 11))
    assert list(period.label_dts(COHORT)) == list(range(11, 21))


def test_the_period_one_tables_stop_at_the_end_of_period_one(tmp_path, lake, con):
    written, area = _build(tmp_path, lake, con)
    assert written["users"] == written["macro"] == {COHORT: 3} and written["user_day_events"] == {COHORT: 30}
    bounds = {u: (r[0]["observation_end_dt"], r[0]["label_start_dt"], r[0]["label_end_dt"])
              for u, r in _by_user(con, area.cohort("cohort_users", COHORT)).items()}
    assert bounds == dict.fromkeys((A, B, C), (10, 11, 20))

    trend = _by_user(con, area.cohort("sessions", COHORT), "ORDER BY user_id, global_session_idx")
    churn = _by_user(con, lake.cohort("sessions", COHORT), "ORDER BY user_id, global_session_idx")
    assert [(s["day_num"], s["total_impressions"]) for s in trend[A]] == [(1, 1), (10, 1)]
    assert trend[A][1]["last_request_ms"] == Imp(A, _at(10, 23, 50)).epoch_ms
    assert [(s["day_num"], s["total_impressions"]) for s in churn[A]] == [(1, 1), (10, 2), (12, 1)]
    assert [s["day_num"] for s in trend[C]] == [1]

    events = _by_user(con, area.cohort("session_events", COHORT), "ORDER BY user_id, global_session_idx")
    late = events[A][1]
    assert (late["impressions"], late["clicks"], late["likes"], late["swipe_views"], late["swipe_actions"]) == (1, 1, 0, 1, 0)
    assert session_events.check_session_events(con, area, first_period_calendar(CALENDAR, PERIODS), [COHORT]).passed

    days = _by_user(con, area.cohort("user_day_events", COHORT), "ORDER BY user_id, day_num")
    assert [r["day_num"] for r in days[A]] == list(range(1, 11))
    assert [r["impressions"] for r in days[A]] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert sum(r[c] for r in days[C] for c in EVENT_COLUMNS) == 1


def test_the_macro_features_count_period_one_only(tmp_path, lake, con):
    _, area = _build(tmp_path, lake, con)
    trend = {u: r[0] for u, r in _by_user(con, area.cohort("kpi_features", COHORT)).items()}
    churn = {u: r[0] for u, r in _by_user(con, lake.cohort("kpi_features", COHORT)).items()}
    a = trend[A]
    assert (a["impressions"], a["clicks"], a["likes"], a["active_days"], a["swipe_items"]) == (2, 2, 0, 2, 1)
    assert (a["impressions_first_half"], a["impressions_second_half"], a["days_since_last_active"]) == (1, 1, 0)
    assert a["last_impression_ms"] == Imp(A, _at(10, 23, 50)).epoch_ms
    assert (churn[A]["impressions"], churn[A]["clicks"], churn[A]["likes"], churn[A]["swipe_items"]) == (4, 3, 1, 2)
    # C: the entry logged after midnight starting the churn label period is not an observation-window event.
    assert (churn[C]["swipe_lists"], churn[C]["swipe_items"]) == (1, 1)
    assert (trend[C]["impressions"], trend[C]["swipe_items"]) == (1, 0)


def test_with_the_churn_windows_the_cohort_tables_are_the_period_one_tables(tmp_path, lake, con, monkeypatch):
    """A period 1 of the observation window's 14 days (and a period 2 longer than the label period):
    ``sessions`` and ``kpi_features`` are linked, not built again, and they are the bytes the build writes."""
    from churn_dagster.studies.trends.sql import inputs

    _build(tmp_path, lake, con)
    windows = TrendSettings(CALENDAR.observation_days, CALENDAR.label_days + 2)
    assert inputs.reuses_cohort_tables(CALENDAR, windows) and not inputs.reuses_cohort_tables(CALENDAR, PERIODS)
    area = lake.trend_inputs()
    build_trend_inputs(con, lake, CALENDAR, windows, [COHORT], gap_minutes=30, publish_day_anchor=31)
    linked = {t: area.cohort(t, COHORT).read_bytes() for t in ("sessions", "kpi_features")}
    assert all(area.cohort(t, COHORT).stat().st_ino == lake.cohort(t, COHORT).stat().st_ino for t in linked)
    monkeypatch.setattr(inputs, "reuses_cohort_tables", lambda calendar, settings: False)
    build_trend_inputs(con, lake, CALENDAR, windows, [COHORT], gap_minutes=30, publish_day_anchor=31)
    assert {t: area.cohort(t, COHORT).read_bytes() for t in linked} == linked
    assert all(area.cohort(t, COHORT).stat().st_ino != lake.cohort(t, COHORT).stat().st_ino for t in linked)
