"""The champion rule: a model is registered only on enough validation evidence above chance, the alias moves
only to a sane registered model that beats the champion on the same users, every version carries its metrics
from the moment it exists, the best champion across families is chosen by the same rule, and a scoring window
uses only champions whose training labels had closed by its day."""

from __future__ import annotations

import json
from datetime import date

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.studies.churn.ml.experiments import Protocol, SchemeResult
from churn_dagster.training.ml.champions import Candidate, EvaluationRows, judge
from churn_dagster.training.ml.evidence import AUC, EvidencePolicy, assess
from churn_dagster.training.registry import (
    CHAMPION,
    best_champion,
    champion_as_of,
    champion_version,
    champions_as_of,
    promote,
    register_and_promote,
    register_version,
)

RNG = np.random.default_rng(0)
X = pd.DataFrame({"signal": RNG.normal(size=400), "noise": RNG.normal(size=400)})
Y = (X["signal"] + 0.5 * RNG.normal(size=400) > 0).astype(int).to_numpy()
ROWS = EvaluationRows("binary", Y[200:], kpi=X.iloc[200:].reset_index(drop=True))


def _model(weight_on_signal: float) -> LogisticRegression:
    """A fitted logistic regression whose skill is set by hand: coefficient on the signal, none on noise."""
    model = LogisticRegression().fit(X.iloc[:200], Y[:200])
    model.coef_ = np.array([[weight_on_signal, 1.0 - abs(weight_on_signal)]])
    return model


@pytest.fixture
def resource(tmp_path) -> MlflowResource:
    return MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", artifact_root=str(tmp_path / "a"))


def _logged(resource: MlflowResource, model) -> tuple[str, str]:
    import mlflow

    with mlflow.start_run(experiment_id=resource.ensure_experiment()) as run:
        uri = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"]).model_uri
    return run.info.run_id, uri


def _register(resource: MlflowResource, model, tags: dict | None = None) -> str:
    run_id, uri = _logged(resource, model)
    return register_version(resource, "m", run_id, uri, {"val_auc": 0.5, **(tags or {})})


def _challenge(resource, model, tags=None, sane=True):
    """The registry's whole rule for ``model``, as every training asset applies it."""
    run_id, uri = _logged(resource, model)
    evidence = assess(EvidencePolicy(), AUC, ROWS.y, model.predict_proba(ROWS.kpi)[:, 1], ("active", "churned"))
    return register_and_promote(resource, "m", run_id, uri, evidence, sane, {"val_auc": 0.5, **(tags or {})},
                                lambda version: promote(resource, version, Candidate("m", "logreg", model), ROWS))


def test_the_alias_moves_only_when_the_challenger_wins_on_the_same_users(resource):
    first = _challenge(resource, _model(0.6))
    worse = _challenge(resource, _model(0.2))
    better = _challenge(resource, _model(1.0))
    assert (first.promoted, worse.promoted, better.promoted) == (True, False, True)
    assert worse.challenger_auc < worse.champion_auc and better.challenger_auc > better.champion_auc
    assert "on the same 200 validation users" in worse.reason
    client = MlflowClient(resource.tracking_uri)
    assert str(champion_version(client, "m").version) == better.version == "3"
    second = client.get_model_version("m", "2")
    assert "does not beat" in second.tags["champion_decision"] and json.loads(second.tags["promoted"]) is False
    assert client.get_run(second.run_id).data.tags["registry_decision"].startswith("v2: not promoted; ")


def test_a_model_at_chance_or_on_too_few_positives_is_never_registered(resource):
    """No version, no alias: the MLflow run says why in one line, and so does the result."""
    at_chance = _challenge(resource, _model(-0.5))  # leans against the signal: below chance
    assert at_chance.version is None and not at_chance.promoted
    assert at_chance.describe().startswith("not registered: validation AUC ")
    assert "does not beat chance 0.5000 by 0.02" in at_chance.describe()
    client = MlflowClient(resource.tracking_uri)
    assert client.search_model_versions("name = 'm'") == [] and champion_version(client, "m") is None
    runs = client.search_runs([resource.ensure_experiment()])
    assert runs[0].data.tags["registry_decision"] == at_chance.describe()
    # Three validation positives: not a candidate, however good the model looks on them.
    few = EvaluationRows("binary", np.array([1, 1, 1] + [0] * 60), kpi=X.iloc[:63].reset_index(drop=True))
    evidence = assess(EvidencePolicy(), AUC, few.y, np.linspace(1, 0, 63), ("active", "churned"))
    assert not evidence.registrable and evidence.reason == "not registered: 3 validation positives (churned), need 30"


def test_stored_validation_aucs_are_not_what_decides(resource):
    """A champion whose stored validation AUC was measured on easier users must still lose to a challenger
    that is better on the challenger's users: the old rule (compare stored numbers) would keep it."""
    _challenge(resource, _model(0.3), tags={"val_auc": 0.99})
    better = _challenge(resource, _model(0.9), tags={"val_auc": 0.80})
    assert better.promoted and better.champion_auc < better.challenger_auc


def test_a_tie_keeps_the_champion_and_an_unreadable_champion_is_replaced(resource):
    _challenge(resource, _model(0.7))
    assert not _challenge(resource, _model(0.7)).promoted  # strictly better, or nothing moves
    other_features = LogisticRegression().fit(X[["signal"]].iloc[:200], Y[:200])
    verdict = judge(Candidate("m", "logreg", _model(0.5)), Candidate("m", "logreg", other_features), ROWS)
    assert verdict.promote and "cannot be scored on these rows" in verdict.reason


def test_a_version_exists_only_with_its_metrics_even_when_promotion_breaks(resource, monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("registry went away")

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", refuse)
    with pytest.raises(ConnectionError):
        _challenge(resource, _model(0.6), tags={"test_auc": 0.7})
    monkeypatch.undo()
    retried = _challenge(resource, _model(0.6), tags={"test_auc": 0.7})  # the retry of the same step
    client = MlflowClient(resource.tracking_uri)
    versions = client.search_model_versions("name = 'm'")
    assert sorted(int(v.version) for v in versions) == [1, 2] and retried.promoted
    for v in versions:  # the interrupted one too: tagged at creation, in the same call
        assert json.loads(v.tags["val_auc"]) == 0.5 and json.loads(v.tags["test_auc"]) == 0.7


def _champion_version(resource, name: str, model, flavor, stored_auc: float, labels_closed: str) -> str:
    import mlflow

    with mlflow.start_run(experiment_id=resource.ensure_experiment()) as run:
        uri = flavor.log_model(model, name="model", pip_requirements=["scikit-learn", "xgboost"]).model_uri
    version = register_version(resource, name, run.info.run_id, uri,
                               {"val_auc": stored_auc, "labels_closed": labels_closed, "promoted": True})
    resource.client().set_registered_model_alias(name, CHAMPION, version)
    return version


def test_the_best_champion_across_families_is_chosen_on_the_same_users(resource):
    """The weak family's champion carries the higher stored validation AUC; scored on one set of users, the
    strong one wins."""
    import mlflow

    from churn_dagster.training.ml.classical import XGBConfig, fit_xgboost

    strong = fit_xgboost(X.iloc[:150], Y[:150], X.iloc[150:200], Y[150:200], XGBConfig(n_estimators=50, n_jobs=1))
    _champion_version(resource, "weak", _model(0.3), mlflow.sklearn, 0.99, "2019-11-20")
    _champion_version(resource, "strong", strong, mlflow.xgboost, 0.60, "2019-11-20")
    found = champions_as_of(resource, {"logreg": "weak", "xgboost": "strong"}, date(2019, 11, 27))
    chosen, aucs = best_champion(resource, found, ROWS)
    assert chosen.candidate.name == "strong" and aucs["strong v1"] > aucs["weak v1"]


def test_a_scoring_window_uses_only_champions_whose_labels_closed_by_its_day(resource):
    """v1 learned from labels closed on 20 Nov, v2 (promoted) from labels closed on 27 Nov, v3 was not promoted:
    a window closing on 26 Nov may use v1 only, one closing on 30 Nov v2, and one before 20 Nov nothing."""
    import mlflow

    _champion_version(resource, "m", _model(0.6), mlflow.sklearn, 0.7, "2019-11-20")
    _champion_version(resource, "m", _model(0.9), mlflow.sklearn, 0.8, "2019-11-27")
    run_id, uri = _logged(resource, _model(0.95))
    register_version(resource, "m", run_id, uri, {"labels_closed": "2019-11-28", "promoted": False})
    client = resource.client()
    assert str(champion_as_of(client, "m", date(2019, 11, 26)).version) == "1"
    assert str(champion_as_of(client, "m", date(2019, 11, 27)).version) == "2"
    assert str(champion_as_of(client, "m", date(2019, 11, 30)).version) == "2"  # v3 never won its promotion
    assert champion_as_of(client, "m", date(2019, 11, 19)) is None
    assert champions_as_of(resource, {"logreg": "m"}, date(2019, 11, 19)) == []
    chosen, _ = best_champion(resource, champions_as_of(resource, {"logreg": "m"}, date(2019, 11, 26)), ROWS)
    assert chosen.version == "1"


def _result(model, test_labels_flipped: bool = False) -> SchemeResult:
    """A random-protocol result validated on ROWS; its test users are the same users, with every label flipped
    on request (a test AUC below chance that no decision may read)."""
    from churn_dagster.studies.churn.ml.experiments import prediction_frame
    from churn_dagster.training.ml.metrics import metrics_for

    p = model.predict_proba(ROWS.kpi)[:, 1]
    test_y = 1 - ROWS.y if test_labels_flipped else ROWS.y
    users = pd.DataFrame({"user_id": [f"u{i}" for i in range(len(p))], "cohort_day": "2019-11-01"})
    return SchemeResult("random", model, metrics_for("binary", ROWS.y, p), metrics_for("binary", test_y, p),
                        prediction_frame(users, "binary", test_y, p), 200, 200, 0.1, [], validation=ROWS)


def _asset_for(model, resource, tmp_path, test_labels_flipped: bool = False):
    from churn_dagster.core.partitions import Partitions
    from churn_dagster.settings import settings_from_env
    from churn_dagster.storage.lake import Lake
    from churn_dagster.studies.churn.training import _train_and_register

    day = date(2019, 11, 1)

    @dg.asset(name="m", check_specs=[dg.AssetCheckSpec("model_sane", asset="m", blocking=True)])
    def _asset(context):
        from churn_dagster.studies.churn import training as model_training

        yield from _train_and_register(
            context, Partitions(settings_from_env({})), "logreg", "binary", day, [Protocol("random", (day,), (day,))],
            resource, {},
            lambda protocol: _result(model, test_labels_flipped),
            lambda r: model_training.log_sklearn_like_model(r, X.head(5), "sklearn"), Lake(tmp_path / "lake"))

    return _asset


def test_the_model_asset_registers_on_evidence_and_blocks_on_broken_weights(resource, tmp_path):
    """The model asset's own flow: a good model becomes champion; one below chance is not registered (the step
    succeeds and says why); one with an infinite weight fails its blocking sanity check, is not registered
    either, and the alias stays. The test split plays no part: every decision reads the validation rows."""
    with dg.instance_for_test() as instance:
        assert dg.materialize([_asset_for(_model(0.8), resource, tmp_path)], instance=instance).success
        below = dg.materialize([_asset_for(_model(-1.0), resource, tmp_path)], instance=instance)
        broken = _model(0.8)
        broken.coef_ = np.array([[0.8, np.inf]])  # probabilities of exactly 0 and 1: finite, but the weights are not
        outcome = dg.materialize([_asset_for(broken, resource, tmp_path)], instance=instance, raise_on_error=False)
    assert below.success and not outcome.success
    decision = below.get_asset_materialization_events()[0].materialization.metadata["champion"].value
    assert decision.startswith("not registered: validation AUC ") and "does not beat chance" in decision
    client = MlflowClient(resource.tracking_uri)
    assert [str(v.version) for v in client.search_model_versions("name = 'logreg_churn'")] == ["1"]
    first = client.get_model_version("logreg_churn", "1")
    assert json.loads(first.tags["labels_closed"]) == "2019-11-21" and json.loads(first.tags["promoted"]) is True
    assert str(champion_version(client, "logreg_churn").version) == "1"


def test_a_test_auc_below_chance_decides_nothing(resource, tmp_path):
    """The same model twice, once with every test label flipped (test AUC below 0.5): the sanity check, the
    evidence and the registry decide the same, because they read the validation users only."""
    with dg.instance_for_test() as instance:
        plain = dg.materialize([_asset_for(_model(0.8), resource, tmp_path / "a")], instance=instance)
        flipped = dg.materialize([_asset_for(_model(0.8), resource, tmp_path / "b", True)], instance=instance)
    assert plain.success and flipped.success
    checks = [r.get_asset_check_evaluations()[0] for r in (plain, flipped)]
    assert [c.passed for c in checks] == [True, True]
    decisions = [r.get_asset_materialization_events()[0].materialization.metadata["champion"].value
                 for r in (plain, flipped)]
    assert decisions[0].startswith("v1: champion; ")  # the first champion
    assert decisions[1].startswith("v2: not promoted; ") and "does not beat the champion" in decisions[1]  # a tie
    metrics = [r.get_asset_materialization_events()[0].materialization.metadata["metrics"].value.records[0].data
               for r in (plain, flipped)]
    assert metrics[0]["val AUC"] == metrics[1]["val AUC"] and metrics[1]["test AUC"] < 0.5 < metrics[0]["test AUC"]
