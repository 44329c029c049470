"""The code location loads, and its graph is what we mean it to be: any change to it shows up here."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest

from churn_dagster.core.partitions import Partitions
from churn_dagster.definitions import build_definitions, defs
from churn_dagster.settings import settings_from_env

DEFS = build_definitions(settings_from_env({}))
TREND_MODELS = ("logreg", "xgboost", "mlp", "activity_lstm", "multichannel", "digmn", "digmn_static")
EXPECTED_UPSTREAM = {
    "raw_impressions": set(),
    "raw_user_demographics": set(),
    "raw_mlog_demographics": set(),
    "raw_mlog_stats": set(),
    "raw_creator_demographics": set(),
    "raw_creator_stats": set(),
    "user_day_activity": {"raw_impressions"},
    "cohort_users": {"user_day_activity"},
    "user_splits": {"cohort_users"},
    "label_scores": {"cohort_users", "user_splits", "user_day_activity"},
    "window_impressions": {"cohort_users", "raw_impressions", "user_day_activity"},
    "sessions": {"cohort_users", "window_impressions"},
    "static_features": {"cohort_users", "sessions", "raw_user_demographics", "user_day_activity"},
    "kpi_features": {
        "cohort_users", "window_impressions", "raw_user_demographics", "raw_mlog_demographics", "raw_creator_demographics",
        "user_day_activity", "raw_mlog_stats", "raw_creator_stats",
    },
    "sequence_tensors": {"sessions", "static_features", "label_scores", "user_splits"},
    **{f"{family}_{target}": {"sequence_tensors"} for family in ("lstm", "hybrid_lstm") for target in ("churn", "level")},
    **{f"{family}_{target}": {"kpi_features", "label_scores"} for family in ("logreg", "xgboost")
       for target in ("churn", "level")},
    "evaluation_report": {
        *(f"{f}_{t}" for f in ("logreg", "xgboost", "lstm", "hybrid_lstm") for t in ("churn", "level")),
        "kpi_features", "label_scores", "sequence_tensors",
    },
    "scoring_window": {
        "user_day_activity", "raw_impressions", "raw_user_demographics", "raw_mlog_demographics",
        "raw_creator_demographics", "raw_mlog_stats", "raw_creator_stats",
    },
    "churn_risk_scores": {"scoring_window", "kpi_features", "label_scores", "sequence_tensors",
                          *(f"{f}_{t}" for f in ("logreg", "xgboost", "lstm", "hybrid_lstm") for t in ("churn", "level"))},
    "trend_labels": {"cohort_users", "raw_impressions"},
    # The default period 1 is the observation window's 14 days: the cohort tables are reused.
    "trend_sessions": {"cohort_users", "window_impressions", "sessions"},
    "trend_macro_features": {
        "cohort_users", "window_impressions", "raw_user_demographics", "raw_mlog_demographics", "raw_creator_demographics",
        "user_day_activity", "raw_mlog_stats", "raw_creator_stats", "kpi_features",
    },
    "session_events": {"trend_sessions", "cohort_users", "raw_mlog_demographics", "window_impressions"},
    "user_day_events": {"cohort_users", "raw_mlog_demographics", "window_impressions"},
    "intent_topics": {"session_events", "user_splits"},
    "intent_profiles": {"intent_topics", "session_events"},
    **{f"trend_{model}_{task}": {"trend_labels", "intent_topics", "session_events", "user_day_events",
                                 "trend_sessions", "trend_macro_features", "user_splits"}
       for model in TREND_MODELS for task in ("day", "session")},
    "trend_report": {f"trend_{model}_{task}" for model in TREND_MODELS for task in ("day", "session")},
    # the NCM case study (2021)
    "case_study_features": {"user_day_activity", "raw_user_demographics"},
    "case_study_labels": {"case_study_features", "user_day_activity"},
    **{f"case_study_{f}": {"case_study_features", "case_study_labels"} for f in ("svm", "naive_bayes", "decision_tree", "mlp")},
    "case_study_report": {"case_study_labels", *(f"case_study_{f}" for f in ("svm", "naive_bayes", "decision_tree", "mlp"))},
    "continuation_requests": {"cohort_users", "sessions", "window_impressions"},
    "continuation_examples": {"continuation_requests", "user_splits", "sessions", "cohort_users", "window_impressions"},
    "continuation_logreg": {"continuation_examples"},
    "continuation_xgboost": {"continuation_examples"},
    "continuation_lstm": {"continuation_examples", "continuation_requests"},
    "continuation_report": {"continuation_logreg", "continuation_xgboost", "continuation_lstm"},
}


@pytest.fixture(scope="module")
def graph():
    return DEFS.resolve_asset_graph()


def test_asset_graph_snapshot(graph):
    upstream = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert upstream == EXPECTED_UPSTREAM


def test_every_asset_is_documented_and_checked(graph):
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        name = key.to_user_string()
        assert node.description and len(node.description) > 40, name
        assert node.group_name != "default", name
        assert node.owners == ["team:churn-data"], name
        assert node.kinds, name
        if name != "evaluation_report":  # a report, not a data asset: its inputs are checked
            assert graph.get_check_keys_for_assets({key}), f"{name} has no asset check"


def _upstream(graph, asset: str, parent: str, key: str) -> list[str]:
    node = graph.get(dg.AssetKey(asset))
    mapping = node.partition_mappings.get(dg.AssetKey(parent), dg.IdentityPartitionMapping())
    upstream_def = graph.get(dg.AssetKey(parent)).partitions_def
    subset = node.partitions_def.subset_with_partition_keys([key])
    result = mapping.get_upstream_mapped_partitions_result_for_partitions(subset, node.partitions_def, upstream_def)
    return sorted(result.partitions_subset.get_partition_keys())


def test_cohort_reads_exactly_its_windows(graph):
    """Lineage shows which raw days a cohort reads: 14 observation days for its window's impressions (which
    sessions, features and continuation requests read, in the cohort's own partition), 7 label days for labels."""
    window = graph.get(dg.AssetKey("window_impressions"))
    labels = graph.get(dg.AssetKey("label_scores"))
    members = graph.get(dg.AssetKey("cohort_users"))

    def upstream_days(node, parent):
        return _upstream(graph, node.key.to_user_string(), parent, "2019-11-05")

    obs = upstream_days(window, "raw_impressions")
    assert (obs[0], obs[-1], len(obs)) == ("2019-11-05", "2019-11-18", 14)
    assert upstream_days(window, "user_day_activity") == obs
    for reader in ("sessions", "kpi_features", "continuation_requests", "continuation_examples", "session_events"):
        assert _upstream(graph, reader, "window_impressions", "2019-11-05") == ["2019-11-05"]
    for stats in ("raw_mlog_stats", "raw_creator_stats"):
        assert _upstream(graph, "kpi_features", stats, "2019-11-05") == obs
    lab = upstream_days(labels, "user_day_activity")
    assert (lab[0], lab[-1], len(lab)) == ("2019-11-19", "2019-11-25", 7)
    before = upstream_days(members, "user_day_activity")
    assert (before[0], before[-1], len(before)) == ("2019-11-01", "2019-11-05", 5)


def test_a_model_reads_exactly_the_cohorts_it_trains_on(graph):
    """Partition 11-09 trains on 11-03 .. 11-09 (7 cohorts) and, out of time, on the last 7 cohorts whose labels
    had closed when 11-09's observation window did (11-22): up to 11-02 (labels 11-16 .. 11-22), from 10-27
    clipped to the log's 11-01."""
    assert _upstream(graph, "lstm_churn", "sequence_tensors", "2019-11-09") == [
        f"2019-11-{d:02d}" for d in range(1, 10)]
    assert _upstream(graph, "logreg_level", "label_scores", "2019-11-03") == ["2019-11-01", "2019-11-02", "2019-11-03"]
    assert _upstream(graph, "evaluation_report", "lstm_churn", "2019-11-09") == ["2019-11-09"]


def test_the_scoring_window_reads_its_days_through_its_mappings(graph):
    """Scoring partition 2019-11-10 scores the users first seen on 11-17, whose 14 days end on 11-30."""
    days = _upstream(graph, "scoring_window", "raw_impressions", "2019-11-10")
    assert (days[0], days[-1], len(days)) == ("2019-11-17", "2019-11-30", 14)
    for stats in ("raw_mlog_stats", "raw_creator_stats"):
        assert _upstream(graph, "scoring_window", stats, "2019-11-10") == days
    members = _upstream(graph, "scoring_window", "user_day_activity", "2019-11-10")
    assert (members[0], members[-1]) == ("2019-11-01", "2019-11-17")
    assert _upstream(graph, "churn_risk_scores", "hybrid_lstm_level", "2019-11-10") == ["2019-11-10"]


def test_a_trend_cohort_reads_its_two_periods_and_its_training_window(graph):
    assert _upstream(graph, "trend_labels", "raw_impressions", "2019-11-03") == [
        f"2019-11-{d:02d}" for d in range(3, 31)]  # 14 + 14 days from the cohort day
    assert _upstream(graph, "intent_topics", "session_events", "2019-11-03") == ["2019-11-01", "2019-11-02", "2019-11-03"]
    period_one = [f"2019-11-{d:02d}" for d in range(3, 17)]  # the first 14 days (test_trend_windows.py: shorter ones)
    # Period 1 is the observation window: its impressions are the cohort's window_impressions (14 raw days).
    assert _upstream(graph, "window_impressions", "raw_impressions", "2019-11-03") == period_one
    for asset in ("trend_sessions", "trend_macro_features", "session_events", "user_day_events"):
        assert _upstream(graph, asset, "window_impressions", "2019-11-03") == ["2019-11-03"], asset
    for parent in ("user_day_activity", "raw_mlog_stats", "raw_creator_stats"):
        assert _upstream(graph, "trend_macro_features", parent, "2019-11-03") == period_one, parent


def test_a_trend_model_reads_its_training_window_and_its_own_intents(graph):
    window = ["2019-11-01", "2019-11-02", "2019-11-03"]
    for parent in ("trend_labels", "session_events", "user_day_events", "trend_sessions", "trend_macro_features",
                   "user_splits"):
        assert _upstream(graph, "trend_digmn_day", parent, "2019-11-03") == window, parent
    assert _upstream(graph, "trend_digmn_day", "intent_topics", "2019-11-03") == ["2019-11-03"]
    assert _upstream(graph, "trend_report", "trend_logreg_session", "2019-11-02") == ["2019-11-02"]


def test_partitions_span_the_labelled_cohorts(graph):
    cohorts = graph.get(dg.AssetKey("sessions")).partitions_def.get_partition_keys()
    days = graph.get(dg.AssetKey("raw_impressions")).partitions_def.get_partition_keys()
    assert (cohorts[0], cohorts[-1]) == ("2019-11-01", "2019-11-10")
    assert (days[0], days[-1], len(days)) == ("2019-11-01", "2019-11-30", 30)


def test_training_assets_share_the_gpu_pool(graph):
    for family in ("logreg", "xgboost", "lstm", "hybrid_lstm"):
        for target in ("churn", "level"):
            assert graph.get(dg.AssetKey(f"{family}_{target}")).pools == {"gpu"}
    for model in TREND_MODELS:
        for task in ("day", "session"):
            node = graph.get(dg.AssetKey(f"trend_{model}_{task}"))
            assert node.pools == {"gpu"} and node.group_name == "trend_models"
    for family in ("logreg", "xgboost", "lstm"):
        assert graph.get(dg.AssetKey(f"continuation_{family}")).pools == {"gpu"}
    assert _upstream(graph, "continuation_lstm", "continuation_requests", "2019-11-10") == [
        f"2019-11-{d:02d}" for d in range(4, 11)]


def test_jobs_load():
    for job in ("raw_snapshots_job", "daily_ingest_job", "cohort_features_job", "trend_data_job", "training_job",
                "trend_training_job", "continuation_job"):
        assert DEFS.resolve_job_def(job).name == job


def test_automation_is_on_by_default():
    assert {s.name: s.default_status for s in DEFS.sensors} == {
        "landing_sensor": dg.DefaultSensorStatus.RUNNING, "cohort_automation": dg.DefaultSensorStatus.RUNNING}
    (schedule,) = DEFS.schedules
    assert (schedule.name, schedule.cron_schedule, schedule.execution_timezone) == (
        "daily_retrain_schedule", "0 6 * * *", "Asia/Shanghai")


def test_two_settings_give_two_code_locations_in_one_process(tmp_path):
    """Nothing is read from the environment or kept in a module global: a 21-day log with 10-day windows and the
    published 30-day one, built one after the other, keep their own partitions, mappings and resources."""
    short = settings_from_env({"CHURN_LAST_DAY": "2019-11-21", "CHURN_OBSERVATION_DAYS": "7", "CHURN_TRAINING_COHORTS": "3",
                               "CHURN_DATA_DIR": str(tmp_path / "short")})
    published = settings_from_env({"CHURN_DATA_DIR": str(tmp_path / "published")})
    a, b = build_definitions(short), build_definitions(published)
    cohorts = lambda d: d.resolve_assets_def("cohort_users").partitions_def.get_partition_keys()  # noqa: E731
    # 21 days, 7 + 7 days: cohorts 11-01 .. 11-08; 30 days, 14 + 7: 11-01 .. 11-10.
    assert (cohorts(a)[0], cohorts(a)[-1], cohorts(b)[-1]) == ("2019-11-01", "2019-11-08", "2019-11-10")
    assert a.resolve_assets_def("raw_impressions").partitions_def.get_partition_keys()[-1] == "2019-11-21"
    assert b.resolve_assets_def("raw_impressions").partitions_def.get_partition_keys()[-1] == "2019-11-30"
    assert Partitions(short).training_cohorts(date(2019, 11, 8)) == [date(2019, 11, d) for d in (6, 7, 8)]
    assert a.resources["lake"].data_dir == str(tmp_path / "short") and b.resources["lake"].data_dir == str(
        tmp_path / "published")
    # Still the first: building the second changed nothing of it.
    assert cohorts(a)[-1] == "2019-11-08"


def test_dagster_loads_the_code_location_lazily_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CHURN_DATA_DIR", str(tmp_path))
    loaded = defs()
    assert loaded.resources["lake"].data_dir == dg.EnvVar("CHURN_DATA_DIR")
