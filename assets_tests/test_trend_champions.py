"""A DIGMN champion is compared on its own inputs: the topic model it was trained with is stored with the
registered version, and its intent vectors for the challenger's validation users are computed with it, not with
the challenger's topic model (the same number of topics from another LDA would be other topics)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_ml_trend_experiments import EVENTS, planted, small

from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.studies.trends.ml.experiments import predict, train_trend_model
from churn_dagster.studies.trends.ml.intents import IntentModel
from churn_dagster.studies.trends.registry import input_signature, load_trend_version, log_trend_model, promote_trend
from churn_dagster.training.ml.evidence import AUC, EvidencePolicy, decision_score
from churn_dagster.training.registry import CHAMPION, register_version

NAMES = tuple(f"e{k}" for k in range(EVENTS))
POLICY = EvidencePolicy(5, 5, 0.0)


def _topics(order: list[int]) -> IntentModel:
    """Three intents, each weighing the event types in ``order`` differently (rows sum to 1)."""
    base = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.4, 0.4]])
    return IntentModel(3, NAMES, base[:, order], {3: 1.0})


@pytest.fixture
def resource(tmp_path) -> MlflowResource:
    return MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'm.db'}", artifact_root=str(tmp_path / "a"))


def test_the_champion_is_scored_with_the_intents_of_its_own_topic_model(resource):
    import mlflow

    torch.set_num_threads(1)
    mine, theirs = _topics([0, 1, 2, 3]), _topics([3, 2, 1, 0])  # same K, other topics
    data = planted()
    champion_data, challenger_data = data.with_intents(mine), data.with_intents(theirs)
    assert not np.allclose(champion_data.intents, challenger_data.intents)
    champion = train_trend_model("digmn", "session", champion_data, 0, small("digmn"), device="cpu")
    with mlflow.start_run(experiment_id=resource.ensure_experiment()) as run:
        uri = log_trend_model(champion, champion_data, mine)
    version = register_version(resource, "trend_digmn_session", run.info.run_id, uri,
                               {"inputs": input_signature("digmn", champion_data)})
    resource.client().set_registered_model_alias("trend_digmn_session", CHAMPION, version)
    _, _, stored = load_trend_version(resource, "trend_digmn_session", "digmn", version)
    assert np.array_equal(stored.topics, mine.topics)

    challenger = train_trend_model("digmn", "session", challenger_data, 1, small("digmn"), device="cpu")
    with mlflow.start_run(experiment_id=resource.ensure_experiment()) as run:
        uri = log_trend_model(challenger, challenger_data, theirs)
    second = register_version(resource, "trend_digmn_session", run.info.run_id, uri,
                              {"inputs": input_signature("digmn", challenger_data)})
    promotion = promote_trend(resource, "trend_digmn_session", second, challenger, challenger_data, POLICY)

    rows = challenger_data.rows("validation")
    y = challenger_data.labels("session")[rows]
    own = decision_score(AUC, y, predict("digmn", "session", champion.model, champion.scaling, champion_data, rows),
                         (0, 1))
    borrowed = decision_score(AUC, y, predict("digmn", "session", champion.model, champion.scaling, challenger_data,
                                              rows), (0, 1))
    assert promotion.champion_auc == pytest.approx(own, abs=1e-9) and abs(own - borrowed) > 1e-6
    assert "its own intents" in promotion.reason and f"on the same {int(rows.sum())} validation users" in promotion.reason
