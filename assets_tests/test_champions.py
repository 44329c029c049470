"""The champion rule: the alias moves only to a sane model that beats the champion on the same users, every
version carries its metrics from the moment it exists, and the best champion across families is chosen by
the same rule."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from churn_dagster.defs.mlflow_resource import MlflowResource
from churn_dagster.defs.models.registry import (
    CHAMPION,
    best_champion,
    champion_version,
    promote,
    register_version,
)
from churn_dagster.ml.champions import Candidate, EvaluationRows, judge
from churn_dagster.ml.experiments import SchemeResult

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


def _register(resource: MlflowResource, model, tags: dict | None = None) -> str:
    import mlflow

    with mlflow.start_run(experiment_id=resource.ensure_experiment()) as run:
        uri = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"]).model_uri
    return register_version(resource, "m", run.info.run_id, uri, {"val_auc": 0.5, **(tags or {})})


def _challenge(resource, model, tags=None):
    version = _register(resource, model, tags)
    return promote(resource, version, Candidate("m", "logreg", model), ROWS)


def test_the_alias_moves_only_when_the_challenger_wins_on_the_same_users(resource):
    first = _challenge(resource, _model(0.6))
    worse = _challenge(resource, _model(0.2))
    better = _challenge(resource, _model(1.0))
    assert (first.promoted, worse.promoted, better.promoted) == (True, False, True)
    assert worse.challenger_auc < worse.champion_auc and better.challenger_auc > better.champion_auc
    assert "on the same 200 validation users" in worse.reason
    client = MlflowClient(resource.tracking_uri)
    assert str(champion_version(client, "m").version) == better.version == "3"
    assert "does not beat" in client.get_model_version("m", "2").tags["champion_decision"]


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


def test_the_best_champion_across_families_is_chosen_on_the_same_users(resource):
    """The weak family's champion carries the higher stored validation AUC; scored on one set of users, the
    strong one wins."""
    import mlflow

    from churn_dagster.ml.classical import XGBConfig, fit_xgboost

    strong = fit_xgboost(X.iloc[:150], Y[:150], X.iloc[150:200], Y[150:200], XGBConfig(n_estimators=50, n_jobs=1))
    for name, model, stored, flavor in (("weak", _model(0.3), 0.99, mlflow.sklearn), ("strong", strong, 0.60, mlflow.xgboost)):
        with mlflow.start_run(experiment_id=resource.ensure_experiment()) as run:
            uri = flavor.log_model(model, name="model", pip_requirements=["scikit-learn", "xgboost"]).model_uri
        version = register_version(resource, name, run.info.run_id, uri, {"val_auc": stored})
        resource.client().set_registered_model_alias(name, CHAMPION, version)
    chosen, aucs = best_champion(resource, {"logreg": "weak", "xgboost": "strong"}, ROWS)
    assert chosen.candidate.name == "strong" and aucs["strong v1"] > aucs["weak v1"]


def test_a_failed_sanity_check_registers_but_never_promotes_and_blocks(resource, tmp_path):
    """The model asset's own flow: a sane model becomes champion; a model worse than chance on its test users
    is registered with model_sane=false, never compared, the alias stays, and the blocking check fails the step."""
    from churn_dagster.defs.models.training import _train_and_register
    from churn_dagster.ml.experiments import prediction_frame
    from churn_dagster.ml.metrics import metrics_for
    from churn_dagster.transforms.lake import Lake

    def result(model) -> SchemeResult:
        p = model.predict_proba(ROWS.kpi)[:, 1]
        metrics = metrics_for("binary", ROWS.y, p)
        users = pd.DataFrame({"user_id": [f"u{i}" for i in range(len(p))], "cohort_day": "2019-11-01"})
        return SchemeResult("random", model, metrics, metrics, prediction_frame(users, "binary", ROWS.y, p),
                            200, 200, 0.1, [], validation=ROWS)

    def asset_for(model):
        @dg.asset(name="m", check_specs=[dg.AssetCheckSpec("model_sane", asset="m", blocking=True)])
        def _asset(context):
            from churn_dagster.defs.models import training as model_training

            yield from _train_and_register(
                context, "logreg", "binary", pd.Timestamp("2019-11-01").date(), [pd.Timestamp("2019-11-01").date()],
                resource, {}, lambda scheme: result(model),
                lambda r: model_training.log_sklearn_like_model(r, X.head(5), "sklearn"), Lake(tmp_path / "lake"))

        return _asset

    with dg.instance_for_test() as instance:
        assert dg.materialize([asset_for(_model(0.8))], instance=instance).success
        outcome = dg.materialize([asset_for(_model(-1.0))], instance=instance, raise_on_error=False)
    assert not outcome.success
    client = MlflowClient(resource.tracking_uri)
    assert str(champion_version(client, "logreg_churn").version) == "1"
    second = client.get_model_version("logreg_churn", "2")
    assert json.loads(second.tags["model_sane"]) is False and "champion_decision" not in second.tags

