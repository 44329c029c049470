"""Loading registered models back from MLflow: a given version, or the best ``champion`` of a target."""

import json
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from churn_dagster.defs.mlflow_resource import MlflowResource, champion_version
from churn_dagster.ml.data import Normalization

SEQUENCE_FAMILIES = ("lstm", "hybrid_lstm")


@dataclass(frozen=True)
class LoadedModel:
    name: str
    family: str
    version: str
    val_auc: float
    model: object
    normalization: Normalization | None

    def describe(self) -> str:
        return f"{self.name} v{self.version} (validation AUC {self.val_auc:.4f})"


def load_version(resource: MlflowResource, name: str, family: str, version: str) -> LoadedModel:
    """The registered model ``name`` at ``version``, in its own flavor, with its normalisation if it has one."""
    mlflow.set_tracking_uri(resource.tracking_uri)
    client = MlflowClient(resource.tracking_uri)
    details = client.get_model_version(name, version)
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
    return LoadedModel(name, family, str(version), float(json.loads(details.tags["val_auc"])), model, normalization)


def best_champion(resource: MlflowResource, names_by_family: dict[str, str]) -> LoadedModel:
    """Among the families' champions, the one with the highest validation AUC."""
    client = MlflowClient(resource.tracking_uri)
    candidates = []
    for family, name in names_by_family.items():
        version = champion_version(client, name)
        if version is not None:
            candidates.append((float(json.loads(version.tags["val_auc"])), family, name, version.version))
    if not candidates:
        raise LookupError(f"no champion registered for any of {sorted(names_by_family.values())}; train a model first")
    _, family, name, version = max(candidates)
    return load_version(resource, name, family, version)
