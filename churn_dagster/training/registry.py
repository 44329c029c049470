"""The MLflow registry side of the champion rule (the comparison itself is in :mod:`churn_dagster.training.ml.champions`,
the evidence rule in :mod:`churn_dagster.training.ml.evidence`).

- A model becomes a registered version (a candidate) only when its validation rows hold enough positives and
  negatives and its validation metric is finite and beats chance by the configured margin; otherwise nothing
  is registered and the MLflow run says why (tag ``registry_decision``).
- A version is created with its metrics as tags in one call, after the run that logged them, so no retry or
  crash can leave a version without metrics. It records when the labels it learned from had all closed
  (``labels_closed``), so a scoring window can pick the version it could have used on its day.
- A model whose sanity check failed is not registered either. The ``champion`` alias moves only to a version
  that beats
  the current champion when both are scored on the same rows: the challenger's validation users, with the
  challenger's labels. The decision is a tag of the version (``champion_decision``, ``promoted``) and of its run.
- Across families, the best champion is chosen by the same rule: every family's champion scored on one set
  of rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.stages.tensors.ml.data import Normalization
from churn_dagster.training.ml.champions import (
    SEQUENCE_FAMILIES,
    Candidate,
    EvaluationRows,
    Verdict,
    best,
    judge,
)
from churn_dagster.training.ml.evidence import Assessment

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
    """What the registry did with a trained model: its version (None when it was not registered), whether it
    became the champion, and why, in one line."""

    name: str
    version: str | None
    promoted: bool
    reason: str
    previous_version: str | None = None
    challenger_auc: float | None = None
    champion_auc: float | None = None

    def describe(self) -> str:
        if self.version is None:
            return self.reason
        return f"v{self.version}: {'champion' if self.promoted else 'not promoted'}; {self.reason}"


def not_registered(resource: MlflowResource, name: str, run_id: str | None, reason: str) -> Promotion:
    """Nothing registered for ``name``; the run (if any) records ``reason``."""
    if run_id is not None:
        resource.client().set_tag(run_id, "registry_decision", reason)
    return Promotion(name, None, False, reason)


def _recorded(resource: MlflowResource, run_id: str, promotion: Promotion) -> Promotion:
    client = resource.client()
    client.set_model_version_tag(promotion.name, promotion.version, "champion_decision", promotion.reason)
    client.set_model_version_tag(promotion.name, promotion.version, "promoted", json.dumps(promotion.promoted))
    client.set_tag(run_id, "registry_decision", promotion.describe())
    return promotion


def register_and_promote(resource: MlflowResource, name: str, run_id: str, model_uri: str, assessment: Assessment,
                         sane: bool, tags: dict, promote_fn) -> Promotion:
    """The registry's whole rule for one trained model: not registered when its sanity check failed (non-finite
    weights or probabilities) or without the evidence; otherwise registered with ``tags`` (its metrics) and
    compared with the champion by ``promote_fn(version)`` (which moves the alias and returns a
    :class:`Promotion`)."""
    if not sane:
        return not_registered(resource, name, run_id, "not registered: its sanity check failed (non-finite weights "
                                                      "or validation probabilities)")
    if not assessment.registrable:
        return not_registered(resource, name, run_id, assessment.reason)
    version = register_version(resource, name, run_id, model_uri, {**tags, "evidence": assessment.reason})
    return _recorded(resource, run_id, promote_fn(version))


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
    elif "xgboost" in mlflow.models.get_model_info(uri).flavors:  # the flavor it was logged in, whatever the family
        model = mlflow.xgboost.load_model(uri)
    else:
        model = mlflow.sklearn.load_model(uri)
    return Registered(Candidate(name, family, model, normalization), str(version))


def load_champion(resource: MlflowResource, name: str, family: str) -> Registered | None:
    current = champion_version(resource.client(), name)
    return None if current is None else load_version(resource, name, family, current.version)


def champion_as_of(client, name: str, day: date):
    """The newest version of ``name`` that won its promotion and whose training labels had all closed by ``day``
    (tags ``promoted`` and ``labels_closed``), or None: the champion a scoring made on ``day`` could use."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return None
    eligible = [v for v in versions if json.loads(v.tags.get("promoted", "false"))
                and date.fromisoformat(json.loads(v.tags.get("labels_closed", '"9999-12-31"'))) <= day]
    return max(eligible, key=lambda v: int(v.version), default=None)


def promote(resource: MlflowResource, version: str, challenger: Candidate, rows: EvaluationRows) -> Promotion:
    """Move the alias to ``version`` of ``challenger`` if it beats the current champion on ``rows``."""
    current = load_champion(resource, challenger.name, challenger.family)
    verdict: Verdict = judge(challenger, current.candidate if current else None, rows)
    if verdict.promote:
        resource.client().set_registered_model_alias(challenger.name, CHAMPION, version)
    return Promotion(challenger.name, version, verdict.promote, verdict.reason,
                     current.version if current else None, verdict.challenger_auc, verdict.champion_auc)


def champions_as_of(resource: MlflowResource, names_by_family: dict[str, str], as_of: date) -> list:
    """Each family's champion as of ``as_of`` (:func:`champion_as_of`), as model versions; families without
    one are left out."""
    client = resource.client()
    return [(family, name, v) for family, name in names_by_family.items()
            if (v := champion_as_of(client, name, as_of)) is not None]


def best_champion(resource: MlflowResource, found: list, rows: EvaluationRows) -> tuple[Registered, dict]:
    """Among the champions ``found`` by :func:`champions_as_of`, the one with the highest AUC on ``rows``, with
    every family's AUC."""
    champions = [load_version(resource, name, family, v.version) for family, name, v in found]
    winner, scores = best([c.candidate for c in champions], rows)
    chosen = next(c for c in champions if c.candidate is winner)
    return chosen, {c.describe(): scores.get(c.candidate.name) for c in champions}
