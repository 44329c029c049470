"""The case study's features and labels (DuckDB), against hand computation: CTR labels around the threshold, the
threshold fit on training users only, features that read the feature days only, the project's split rule
(a seeded hash of the user id) reused, and the window settings."""

from __future__ import annotations

import pytest
from conftest import CALENDAR, Imp, tid, write_impressions, write_snapshots
from pipeline_helpers import ingest_folder, rows

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.settings import SettingsError, settings_from_env
from churn_dagster.stages.cohorts.sql.cohorts import build_user_day_activity
from churn_dagster.stages.cohorts.sql.labels import SplitSettings, split_of
from churn_dagster.studies.case_study.sql import data as cs

# The fixture's users and cards, as IDs of the published grammar (see conftest.tid).
A, B, C = (tid(u) for u in "ABC")  # the feature tests' users (the label tests name theirs by role, U)

WINDOWS = cs.Windows(10, 20)
FIRST = CALENDAR.day(1)


def _at(dt: int, minute: int = 0) -> str:
    return f"{CALENDAR.day(dt).isoformat()} 12:{minute:02d}:00"


def _target(user: str, impressions: int, clicks: int, dt: int = 15) -> list[Imp]:
    """``impressions`` impressions of ``user`` on day ``dt``, the first ``clicks`` of them clicked."""
    return [Imp(user, _at(dt, i), i + 1, click=i < clicks, view_time=5.0 if i < clicks else None)
            for i in range(impressions)]


def _source(tmp_path, lake, con, imps, demographics: str = "") -> None:
    src = tmp_path / "src"
    write_impressions(src, imps)
    write_snapshots(src)
    (src / "user_demographics.csv").write_text(",".join(fmt.USER_DEMOGRAPHICS.header) + "\n" + demographics)
    ingest_folder(con, src, lake, stems={"impression_data", "user_demographics"})
    for d in range(1, CALENDAR.num_days + 1):
        build_user_day_activity(con, lake, CALENDAR.day(d))


def _named(name: str, split: str) -> str:
    """The first user id ``<name>0``, ``<name>1``, ... that the project's split rule (default seed) puts in
    ``split``: the tests name users by role and need them in a given split."""
    return next(tid(f"{name}{k}") for k in range(1000) if split_of(tid(f"{name}{k}"), SplitSettings()) == split)


def _labels(tmp_path, lake, con, imps, windows=WINDOWS):
    _source(tmp_path, lake, con, imps)
    cs.build_features(con, lake, CALENDAR, windows)
    _, threshold = cs.build_labels(con, lake, CALENDAR, windows, SplitSettings())
    return {r["user_id"]: r for r in rows(con, cs.labels_path(lake))}, threshold


# Everyone is seen on day 1. Days 11-30 (target): training CTRs A 1/2, B 0/4, C 1/4 (Z has no impression
# there); the threshold is their mean, (0.5 + 0 + 0.25) / 3 = 0.25.
ROLES = {"A": "train", "B": "train", "C": "train", "Z": "train", "T": "test", "V": "validation"}
U = {name: _named(name, split) for name, split in ROLES.items()}


def _population(t_clicks: int = 3, a_clicks: int = 1) -> list[Imp]:
    imps = [Imp(u, _at(1)) for u in U.values()]
    imps += _target(U["A"], 2, a_clicks) + _target(U["B"], 4, 0) + _target(U["C"], 4, 1, dt=30)
    imps += _target(U["T"], 8, t_clicks, dt=11) + _target(U["V"], 4, 1)
    return imps


def test_ctr_labels_around_the_threshold(tmp_path, lake, con):
    labelled, threshold = _labels(tmp_path, lake, con, _population())
    by_user = {name: labelled[u] for name, u in U.items()}
    assert (threshold.value, threshold.fitted_on_users) == (0.25, 3)
    assert by_user["A"]["target_ctr"] == 0.5 and by_user["A"]["active"]
    assert by_user["B"]["target_ctr"] == 0.0 and not by_user["B"]["active"]
    # exactly at the mean is not above it
    assert by_user["C"]["target_ctr"] == 0.25 and not by_user["C"]["active"]
    assert by_user["V"]["target_ctr"] == 0.25 and not by_user["V"]["active"]
    # no impression in days 11-30: no CTR, inactive
    assert (by_user["Z"]["target_impressions"], by_user["Z"]["target_ctr"], by_user["Z"]["active"]) == (0, None, False)
    assert (by_user["T"]["target_impressions"], by_user["T"]["target_clicks"]) == (8, 3) and by_user["T"]["active"]
    assert {name: r["split"] for name, r in by_user.items()} == ROLES


def test_the_threshold_is_fit_on_training_users_only(tmp_path, lake, con):
    _, base = _labels(tmp_path / "base", lake, con, _population())
    for clicks in (0, 8):  # a test user's clicks move their own label, not the threshold
        by_user, moved = _labels(tmp_path / f"t{clicks}", lake, con, _population(t_clicks=clicks))
        assert moved == base and by_user[U["T"]]["active"] == (clicks / 8 > 0.25)
    # the counter-check: a training user's clicks do move it, (1.0 + 0 + 0.25) / 3
    _, trained = _labels(tmp_path / "a", lake, con, _population(a_clicks=2))
    assert trained.value == pytest.approx(1.25 / 3) and trained.fitted_on_users == 3


def test_nobody_is_active_without_a_training_ctr(tmp_path, lake, con):
    imps = [Imp(U[name], _at(1)) for name in "AT"] + _target(U["T"], 4, 4)
    by_user, threshold = _labels(tmp_path, lake, con, imps)
    assert (threshold.value, threshold.fitted_on_users) == (None, 0)
    assert not any(r["active"] for r in by_user.values())


DEMOGRAPHICS = f"{A},guang dong,21,female,12,5,6\n{B},,,,608,3,7\n"


def _features(tmp_path, lake, con, imps, use_leaky_columns=False, windows=WINDOWS) -> dict:
    _source(tmp_path, lake, con, imps, DEMOGRAPHICS)
    cs.build_features(con, lake, CALENDAR, windows, use_leaky_columns)
    return {r["user_id"]: r for r in rows(con, cs.features_path(lake))}


EARLY = [
    Imp(A, _at(1), 1, click=True, like=True, view_comment=True, view_time=3.5),
    Imp(A, _at(1), 2),
    Imp(A, _at(10, 5), 1, click=True, share=True, comment=True, homepage=True, view_time=10.25),
    Imp(B, _at(4)),
    Imp(C, _at(12), click=True, view_time=1.0),  # first seen after the feature days: not in the population
]


def test_features_by_hand(tmp_path, lake, con):
    by_user = _features(tmp_path, lake, con, EARLY)
    assert set(by_user) == {A, B}
    a, b = by_user[A], by_user[B]
    assert {k: a[k] for k in cs.ACTIVITY_FEATURES} == {
        "clicks": 2, "comments": 1, "homepage_visits": 1, "shares": 1, "comment_views": 1, "likes": 1,
        "view_time_s": 13.75}
    assert (a["first_dt"], a["last_feature_dt"], a["province"], a["age"], a["gender"], a["registered_months"]) == (
        1, 10, "guang dong", 21.0, "female", 12.0)
    # empty demographics stay missing, 608 registered months is impossible
    assert (b["clicks"], b["province"], b["age"], b["gender"], b["registered_months"]) == (0, None, None, None, None)
    assert cs.FOLLOW_COUNT not in a and not a["no_demographics_row"]
    assert _features(tmp_path / "follow", lake, con, EARLY, use_leaky_columns=True)[A][cs.FOLLOW_COUNT] == 5.0


def test_features_use_only_the_feature_days(tmp_path, lake, con):
    before = _features(tmp_path / "before", lake, con, EARLY)
    later = [Imp(A, _at(11), 3, click=True, like=True, share=True, comment=True, homepage=True, view_comment=True,
                 view_time=99.0), Imp(B, _at(30), click=True, view_time=1.0)]
    assert _features(tmp_path / "after", lake, con, EARLY + later) == before
    # a shorter feature window moves day 10 out of the features
    short = _features(tmp_path / "short", lake, con, EARLY, windows=cs.Windows(5, 20))
    assert (short[A]["clicks"], short[A]["last_feature_dt"]) == (1, 1)


def test_every_user_gets_the_projects_split_whether_or_not_their_cohort_is_labelled(tmp_path, lake, con):
    """The case study splits by the same seeded hash as user_splits: first seen on day 1 or day 2, labelled
    cohort or not, a user's split is :func:`split_of` of their id, and it is the same on a re-run."""
    users = [tid(f"U{i:02d}") for i in range(40)]
    imps = [Imp(u, _at(1 + i % 2)) for i, u in enumerate(users)]
    by_user, _ = _labels(tmp_path, lake, con, imps)
    assert {u: by_user[u]["split"] for u in users} == {u: split_of(u, SplitSettings()) for u in users}
    assert {r["split"] for r in by_user.values()} == {"train", "validation", "test"}
    again, _ = _labels(tmp_path / "again", lake, con, imps)
    assert {u: again[u]["split"] for u in users} == {u: by_user[u]["split"] for u in users}


def test_the_windows_are_settings_with_one_line_errors():
    defaults = settings_from_env({})
    assert (defaults.case_study_feature_days, defaults.case_study_target_days) == (10, 20)
    short = settings_from_env({"CHURN_LAST_DAY": "2019-11-24", "CHURN_OBSERVATION_DAYS": "7"})  # 24 days: 8 + 16
    assert (short.case_study_feature_days, short.case_study_target_days) == (8, 16)
    assert settings_from_env({"CHURN_CASE_STUDY_FEATURE_DAYS": "7"}).case_study_target_days == 20
    for environ, message in [
        ({"CHURN_CASE_STUDY_FEATURE_DAYS": "0"}, "CHURN_CASE_STUDY_FEATURE_DAYS='0' is not allowed: expected a whole "
                                                 "number of days, at least 1"),
        ({"CHURN_CASE_STUDY_TARGET_DAYS": "25"}, "CHURN_CASE_STUDY_FEATURE_DAYS + CHURN_CASE_STUDY_TARGET_DAYS "
                                                "(10 + 25) must fit in the 30 days of the log: feature days from 1 to 29"),
    ]:
        with pytest.raises(SettingsError) as raised:
            settings_from_env(environ)
        assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
