"""Cohorts, features, labels and daily sequences of an event log (``stages/events``), on a log small enough
to compute by hand, and the windows' arithmetic."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from churn_dagster.stages.cohorts.sql.labels import SplitSettings
from churn_dagster.stages.events.build import build_cohorts
from churn_dagster.stages.events.load import load_events
from churn_dagster.stages.events.sql.cohorts import Windows
from churn_dagster.stages.events.sql.mapping import EventMapping
from churn_dagster.stages.events.sql.sources import FileSource

MAPPING = EventMapping("user", "ts", event_type="type", value="amount", weights={"buy": 5.0})
WINDOWS = Windows(date(2024, 1, 1), observation_days=4, label_days=3, grain="day", training_cohorts=2)
LOG = """user,ts,type,amount
a,2024-01-01 10:00:00,view,
a,2024-01-01 10:10:00,buy,10
a,2024-01-03 09:00:00,view,
a,2024-01-05 08:00:00,view,
a,2024-01-06 08:00:00,buy,99
a,2024-01-09 08:00:00,view,
b,2024-01-01 12:00:00,view,
c,2024-01-02 12:00:00,view,
"""


def _build(con, tmp_path, log: str, windows=WINDOWS, cohorts=(date(2024, 1, 1), date(2024, 1, 2)), last=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    src = tmp_path / "log.csv"
    src.write_text(log)
    events = tmp_path / "events.parquet"
    summary = load_events(con, FileSource((src,)), MAPPING, events, tmp_path / "q.parquet")
    last = last or date.fromisoformat(summary.last_day)
    built = build_cohorts(con, events, list(cohorts), last, windows, MAPPING, SplitSettings(),
                          lambda c: tmp_path / "cohorts" / c.isoformat())
    return built, (lambda c, name: pd.read_parquet(tmp_path / "cohorts" / c.isoformat() / f"{name}.parquet"))


def test_features_and_labels_by_hand(con, tmp_path):
    built, read = _build(con, tmp_path, LOG)
    assert [(b.cohort, b.users, b.labelled, b.churned) for b in built] == [
        (date(2024, 1, 1), 2, True, 1), (date(2024, 1, 2), 1, True, 1)]
    f = read(date(2024, 1, 1), "features").set_index("user_id")
    a = f.loc["a"]
    assert (a.events_total, a.active_days, a.active_share, a.recency_days, a.tenure_days) == (3, 2, 0.5, 1, 2)
    assert (a.n_view, a.n_buy, a.share_view) == (2, 1, pytest.approx(2 / 3))
    assert (a.value_sum, a.value_mean, a.value_max, a.first_value) == (10, 10, 10, 10)
    assert a.valued_share == pytest.approx(1 / 3)
    # Gaps: 10 minutes, then 46 h 50 min; sessions by the 30-minute rule: {10:00, 10:10} and {01-03 09:00}.
    assert a.gap_hours_mean == pytest.approx((10 / 60 + 46 + 50 / 60) / 2)
    assert a.gap_hours_max == pytest.approx(46 + 50 / 60)
    # Their coefficient of variation: sample sd |g2 - g1| / sqrt(2) over the mean (g1 + g2) / 2.
    g1, g2 = 10 / 60, 46 + 50 / 60
    assert a.gap_cv == pytest.approx((g2 - g1) / math.sqrt(2) / ((g1 + g2) / 2))
    assert a.top_weekday_share == 0.5  # one active Monday, one active Wednesday
    assert a.last_value == 10 and np.isnan(a.value_trend)  # one valued event: no slope
    assert (a.sessions, a.events_per_session, a.session_minutes) == (2, 1.5, 5)
    assert a.session_gap_hours_mean == pytest.approx(46 + 50 / 60)
    # Daily counts [2, 0, 1, 0]: least-squares slope sum((d - 1.5) c_d) / sum((d - 1.5)^2) = -2.5 / 5.
    assert a.daily_trend == pytest.approx(-0.5)
    assert a.second_half_share == pytest.approx(1 / 3)
    assert a.first_hour_sin == pytest.approx(math.sin(2 * math.pi * 10 / 24))
    assert a.first_weekday_sin == pytest.approx(math.sin(2 * math.pi * 1 / 7))  # a Monday (Sunday = 0)
    b = f.loc["b"]
    assert (b.events_total, b.recency_days) == (1, 3)
    assert np.isnan(b.gap_hours_mean) and np.isnan(b.value_sum)
    labels = read(date(2024, 1, 1), "labels").set_index("user_id")
    # a's label period is 01-05 .. 01-07: a view and a buy (weight 5); the view of 01-09 is after it.
    assert labels.loc["a", ["churned", "frequency", "impressions", "quality_raw"]].tolist() == [
        False, pytest.approx(2 / 3), 2, 6]
    assert labels.loc["b", ["churned", "frequency", "impressions", "quality_raw"]].tolist() == [True, 0, 0, 0]


def test_nothing_of_the_label_period_reaches_a_feature(con, tmp_path):
    before, read = _build(con, tmp_path / "one", LOG)
    more = LOG + "b,2024-01-05 12:00:00,buy,500\nb,2024-01-06 12:00:00,view,\n"
    after, read_after = _build(con, tmp_path / "two", more)
    cohort = date(2024, 1, 1)
    pd.testing.assert_frame_equal(read(cohort, "features"), read_after(cohort, "features"))
    seq = [np.load(tmp_path / run / "cohorts" / cohort.isoformat() / "sequences.npy") for run in ("one", "two")]
    assert np.array_equal(*seq)
    assert read_after(cohort, "labels").set_index("user_id").loc["b", "churned"] == False  # noqa: E712


def test_daily_sequences_by_hand(con, tmp_path):
    _, _ = _build(con, tmp_path, LOG)
    folder = tmp_path / "cohorts" / "2024-01-01"
    meta = json.loads((folder / "normalization.json").read_text())
    names = meta["sequence"]["features"]
    seq = np.load(folder / "sequences.npy")
    assert seq.shape == (2 * 4, len(names))
    assert np.load(folder / "offsets.npy").tolist() == [0, 4, 8]
    a = pd.DataFrame(seq[:4], columns=names)  # users in id order: a first
    assert a["log_events"].tolist() == pytest.approx([math.log(3), 0, math.log(2), 0])
    assert a["active"].tolist() == [1, 0, 1, 0]
    assert a["log_n_buy"].tolist() == pytest.approx([math.log(2), 0, 0, 0])
    assert a["log_value"].tolist() == pytest.approx([math.log(11), 0, 0, 0])
    assert a["mean_value"].tolist() == pytest.approx([10, 0, 0, 0])
    assert a["position"].tolist() == pytest.approx([0, 0.25, 0.5, 0.75])
    static = np.load(folder / "static.npy")
    assert static.shape == (2, len(meta["static"]["features"]))


def test_labels_wait_for_the_whole_label_period(con, tmp_path):
    # The log ends on 01-06: cohort 01-01's labels close on 01-07, so it is built without labels.
    built, read = _build(con, tmp_path, LOG, last=date(2024, 1, 6), cohorts=(date(2024, 1, 1),))
    assert not built[0].labelled
    assert read(date(2024, 1, 1), "labels")["churned"].isna().all()


def test_weekly_cohorts_and_their_windows():
    w = Windows(date(2024, 1, 1), observation_days=14, label_days=14, grain="week", training_cohorts=4)
    assert w.cohort_of(date(2024, 1, 7)) == date(2024, 1, 1)
    assert w.cohort_of(date(2024, 1, 8)) == date(2024, 1, 8)
    c = date(2024, 3, 4)
    # The last member joins on c + 6; observation closes c + 19, labels c + 33.
    assert (w.observation_closes(c), w.labels_close(c)) == (c + timedelta(19), c + timedelta(33))
    # Cohort e's labels had closed when c's observation did iff e + 33 <= c + 19, i.e. e <= c - 14.
    assert w.out_of_time(c) == [c - timedelta(d) for d in (35, 28, 21, 14)]
    assert w.training_window(c) == [c - timedelta(d) for d in (21, 14, 7, 0)]
    assert w.training_window(date(2024, 1, 8)) == [date(2024, 1, 1), date(2024, 1, 8)]


def test_a_weekly_cohort_gathers_a_week_of_first_days(con, tmp_path):
    weekly = Windows(date(2024, 1, 1), observation_days=4, label_days=3, grain="week", training_cohorts=2)
    built, read = _build(con, tmp_path, LOG, windows=weekly, cohorts=(date(2024, 1, 1),), last=date(2024, 1, 20))
    assert built[0].users == 3
    assert read(date(2024, 1, 1), "features")["user_id"].tolist() == ["a", "b", "c"]


def test_a_users_table_adds_signup_and_attribute_features(con, tmp_path):
    from churn_dagster.stages.events.load import load_users
    from churn_dagster.stages.events.sql.users import UsersMapping

    table = tmp_path / "users.csv"
    table.write_text("id,joined,country,age\n"
                     "a,2023-12-30,DE,31\n"     # 2
                     "b,,FR,\n"                 # 3: no signup time, no age
                     "c,2024-01-02,DE,40\n"     # 4
                     "a,2023-12-01,US,20\n"     # 5: a again: quarantined, the first row kept
                     "d,yesterday,DE,50\n")     # 6: not a time
    mapping = UsersMapping("id", "joined", attributes=("country", "age"))
    counted, loaded, quarantined = load_users(con, FileSource((table,)), mapping, tmp_path / "u.parquet",
                                              tmp_path / "uq.parquet")
    assert (counted, loaded, quarantined) == (5, 3, 2)
    q = pd.read_parquet(tmp_path / "uq.parquet").set_index("line")
    assert q.loc[5, "reason"] == "duplicate: user id already on line 2" and q.loc[5, "column"] == "id"
    assert q.loc[6, "column"] == "joined" and q.loc[6, "reason"].startswith("signup_time: not an ISO 8601 time")
    src = tmp_path / "log.csv"
    src.write_text(LOG)
    events = tmp_path / "events.parquet"
    load_events(con, FileSource((src,)), MAPPING, events, tmp_path / "q.parquet")
    build_cohorts(con, events, [date(2024, 1, 1), date(2024, 1, 2)], date(2024, 1, 9), WINDOWS, MAPPING,
                  SplitSettings(), lambda c: tmp_path / "cohorts" / c.isoformat(), users=tmp_path / "u.parquet",
                  attributes=mapping.attributes)
    f = pd.concat([pd.read_parquet(tmp_path / "cohorts" / c / "features.parquet") for c in ("2024-01-01", "2024-01-02")]
                  ).set_index("user_id")
    # DE is the most frequent country (a, c), then FR (b); age is numeric.
    assert f.loc[["a", "b", "c"], "user_country_de_0"].tolist() == [1, 0, 1]
    assert f.loc[["a", "b", "c"], "user_country_fr_1"].tolist() == [0, 1, 0]
    assert f.loc["a", "user_age"] == 31 and np.isnan(f.loc["b", "user_age"])
    # a signed up on 2023-12-30 and first acted on 2024-01-01; c on its signup day; b has no signup time.
    assert f.loc["a", "signup_lead_days"] == 2 and f.loc["c", "signup_lead_days"] == 0
    assert np.isnan(f.loc["b", "signup_lead_days"])


@pytest.mark.parametrize("grain, label_days, training, reach", [("week", 14, 4, 5), ("day", 14, 4, 17), ("week", 10, 2, 3)])
def test_a_model_partition_reads_back_as_far_as_its_out_of_time_cohorts(grain, label_days, training, reach):
    from churn_dagster.components.event_log_assets import _reach
    from churn_dagster.components.event_log_spec import EventLogSpec

    w = Windows(date(2024, 1, 1), 14, label_days, grain, training)
    spec = EventLogSpec("x", None, MAPPING, w, None, 0.01, None, None, 1, "defs.yaml")
    assert _reach(spec) == reach
    c = date(2024, 6, 3)
    oldest = min(w.out_of_time(c) + w.training_window(c))
    assert (c - oldest).days == reach * w.grain_days
