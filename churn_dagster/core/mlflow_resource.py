"""A small typed resource around MLflow: one MLflow run per training step, tagged with its Dagster run.

(Not the legacy ``dagster-mlflow`` resource, which opens one MLflow run per Dagster run.) By default the
tracking store is a SQLite file with artifacts beside it, under the data directory: no server needed, and
the registry works. ``MLFLOW_TRACKING_URI`` points it at a server instead. MLflow is imported inside the
methods: loading the code location should not import it.
"""

import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from pydantic import Field

from churn_dagster.errors import UserError
from churn_dagster.training.ml.evidence import EvidencePolicy


class MlflowUnavailableError(UserError, ConnectionError):
    """The tracking server did not answer; nothing was logged or registered."""


class MlflowResource(dg.ConfigurableResource):
    """Where training runs are logged and models registered."""

    tracking_uri: str = Field(description="MLflow tracking URI (sqlite:///... by default, or a server URL).")
    artifact_root: str | None = Field(
        default=None,
        description="Artifact location of the experiment when this resource creates it; None lets a tracking "
        "server choose (it proxies artifacts to its own store).",
    )
    experiment: str = Field(default="churn_dagster", description="MLflow experiment of the training runs.")
    ui_url: str = Field(default="http://127.0.0.1:5000", description="Base URL of `mlflow ui`, for run links.")
    min_validation_positives: int = Field(
        default=30, description="A model is registered only with at least this many validation positives (of each "
        "class it is judged on).")
    min_validation_negatives: int = Field(
        default=30, description="... and at least this many validation negatives.")
    promotion_margin: float = Field(
        default=0.02, description="... and only when its validation metric beats chance by more than this.")

    @property
    def evidence_policy(self) -> EvidencePolicy:
        """The registry's evidence rule (:mod:`churn_dagster.training.ml.evidence`)."""
        return EvidencePolicy(self.min_validation_positives, self.min_validation_negatives, self.promotion_margin)

    def check_reachable(self) -> None:
        """Fail fast and clearly when a tracking server does not answer (the MLflow client would otherwise
        retry each call for minutes); the training assets' retry policy then tries again later."""
        if not self.tracking_uri.startswith(("http://", "https://")):
            return
        try:
            with urllib.request.urlopen(f"{self.tracking_uri.rstrip('/')}/health", timeout=10) as response:
                if response.status == 200:
                    return
        except OSError as exc:
            raise MlflowUnavailableError(f"MLflow tracking server {self.tracking_uri} is unreachable: {exc}") from exc
        raise MlflowUnavailableError(f"MLflow tracking server {self.tracking_uri} is not healthy")

    def ensure_experiment(self) -> str:
        """Point MLflow at the store and return the experiment id, creating the experiment if needed."""
        import mlflow

        self.check_reachable()
        if self.tracking_uri.startswith("sqlite:///"):
            Path(self.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.tracking_uri)
        found = mlflow.get_experiment_by_name(self.experiment)
        if found is not None:
            return found.experiment_id
        return mlflow.create_experiment(self.experiment, artifact_location=self.artifact_root)

    @contextmanager
    def start_run(self, context: dg.AssetExecutionContext, run_name: str, tags: dict[str, str]) -> Iterator:
        """An MLflow run tagged with the Dagster run id, the asset key and the partitions it read."""
        import mlflow

        experiment_id = self.ensure_experiment()
        dagster_tags = {
            "dagster.run_id": context.run.run_id,
            "dagster.asset_key": context.asset_key.to_user_string(),
            "dagster.job": context.run.job_name,
        }
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags={**dagster_tags, **tags}) as run:
            yield run

    def run_url(self, run_id: str) -> str:
        from mlflow import MlflowClient

        experiment_id = MlflowClient(self.tracking_uri).get_run(run_id).info.experiment_id
        return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}"

    def client(self):
        """An ``MlflowClient`` on this store."""
        from mlflow import MlflowClient

        return MlflowClient(self.tracking_uri)


def local_tracking_uri(data_dir: Path | str) -> str:
    """The default store: a SQLite file under ``data_dir/mlflow`` (no server needed, and the registry works)."""
    return f"sqlite:///{Path(data_dir) / 'mlflow' / 'mlflow.db'}"


def local_artifact_root(data_dir: Path | str) -> str:
    """Where the default store keeps artifacts, beside its database."""
    return str(Path(data_dir) / "mlflow" / "artifacts")
