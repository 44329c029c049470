"""The MLflow registry side of the champion rule (the comparison itself is in :mod:`churn_dagster.ml.champions`).

- A version is created with its metrics as tags in one call, after the run that logged them, so no retry or
  crash can leave a version without metrics.
- The ``champion`` alias moves only after the model's sanity check passed, and only to a version that beats
  the current champion when both are scored on the same rows: the challenger's validation users, with the
  challenger's labels.
- Across families, the best champion is chosen by the same rule: every family's champion scored on one set
  of rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from churn_dagster.defs.mlflow_resource import MlflowResource
from churn_dagster.ml.champions import (
    SEQUENCE_FAMILIES,
    Candidate,
    EvaluationRows,
    Verdict,
    best,
    judge,
)
from churn_dagster.ml.data import Normalization

CHAMPION = "champion"


@dataclass(frozen=True)
class Registered:
    """A registered version loaded back, ready to score."""

    candidate: Candidate
    version: str

    def describe(self) -> str:
        return f"{self.candidate.name} v{self.version}"


@dataclass(frozen=True)
class Promotion:
    """What registering a model did: its version, whether it became the champion, and why."""

    name: str
    version: str
    promoted: bool
    reason: str
    previous_version: str | None = None
    challenger_auc: float | None = None
    champion_auc: float | None = None

    def describe(self) -> str:
        return f"v{self.version}: {'champion' if self.promoted else 'not promoted'}; {self.reason}"


def register_version(resource: MlflowResource, name: str, run_id: str, model_uri: str, tags: dict) -> str:
    """A new version of ``name`` with ``tags`` (its metrics) set in the same call that creates it."""
    from mlflow.exceptions import MlflowException

    client = resource.client()
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    # A logged model (``models:/<id>``) is registered from its artifact location, naming its id, as
    # ``mlflow.register_model`` does; a tracking server refuses the bare URI.
    logged = client.get_logged_model(model_uri.removeprefix("models:/"))
    version = client.create_model_version(name, logged.artifact_location, run_id=run_id, model_id=logged.model_id,
                                          tags={k: json.dumps(v) for k, v in tags.items()})
    return str(version.version)


def champion_version(client, name: str):
    """The model version holding the ``champion`` alias, or None (``client``: an ``MlflowClient``)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def load_version(resource: MlflowResource, name: str, family: str, version: str) -> Registered:
    """The registered model ``name`` at ``version``, in its own flavor, with its normalisation if it has one."""
    import mlflow

    mlflow.set_tracking_uri(resource.tracking_uri)
    uri = f"models:/{name}/{version}"
    normalization = None
    if family in SEQUENCE_FAMILIES:
        local = Path(mlflow.artifacts.download_artifacts(uri))
        model = mlflow.pytorch.load_model(str(local))
        normalization = Normalization.from_dict(json.loads((local / "extra_files" / "normalization.json").read_text()))
    elif family == "xgboost":
        model = mlflow.xgboost.load_model(uri)
    else:
        model = mlflow.sklearn.load_model(uri)
    return Registered(Candidate(name, family, model, normalization), str(version))


def load_champion(resource: MlflowResource, name: str, family: str) -> Registered | None:
    current = champion_version(resource.client(), name)
    return None if current is None else load_version(resource, name, family, current.version)


def promote(resource: MlflowResource, version: str, challenger: Candidate, rows: EvaluationRows) -> Promotion:
    """Move the alias to ``version`` of ``challenger`` if it beats the current champion on ``rows``; record
    the decision on the version either way."""
    current = load_champion(resource, challenger.name, challenger.family)
    verdict: Verdict = judge(challenger, current.candidate if current else None, rows)
    client = resource.client()
    if verdict.promote:
        client.set_registered_model_alias(challenger.name, CHAMPION, version)
    client.set_model_version_tag(challenger.name, version, "champion_decision", verdict.reason)
    return Promotion(challenger.name, version, verdict.promote, verdict.reason,
                     current.version if current else None, verdict.challenger_auc, verdict.champion_auc)


def best_champion(resource: MlflowResource, names_by_family: dict[str, str], rows: EvaluationRows) -> tuple[Registered, dict]:
    """Among the families' champions, the one with the highest AUC on ``rows``; with every family's AUC."""
    champions = [c for family, name in names_by_family.items() if (c := load_champion(resource, name, family))]
    if not champions:
        raise LookupError(f"no champion registered for any of {sorted(names_by_family.values())}; train a model first")
    winner, scores = best([c.candidate for c in champions], rows)
    chosen = next(c for c in champions if c.candidate is winner)
    return chosen, {c.describe(): scores.get(c.candidate.name) for c in champions}
