"""The thesis's churn and level models on any event log: the four families (logistic regression, XGBoost,
LSTM, hybrid LSTM) and the reference row (gradient boosting on recency, frequency and monetary value alone),
trained through the same protocols, evidence rule, registry and champion rule as on the NCM log.

The event-log stage (``stages/events``) writes each cohort's static features, label components and daily
sequences in the layout :mod:`churn_dagster.studies.churn.ml.experiments` reads, so the experiments are the
same code; only the cohort arithmetic (a daily or weekly grain, the log's own windows) comes from the
component's settings. Imported only when a training step runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from churn_dagster.core.metadata import check, table
from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.domain.engagement import LEVEL_NAMES
from churn_dagster.stages.events.sql.cohorts import RFM_FEATURES, Windows
from churn_dagster.stages.tensors.ml.data import (
    CohortTensors,
    SequenceDataset,
    make_loader,
)
from churn_dagster.studies.churn.config import hyperparameters
from churn_dagster.studies.churn.ml.experiments import (
    Protocol,
    classical_experiment,
    protocols,
    sequence_experiment,
)
from churn_dagster.studies.churn.mlflow_outputs import log_result, write_model_outputs
from churn_dagster.training.kit import RegistryCandidate, Unit, train_and_register
from churn_dagster.training.ml.champions import Candidate
from churn_dagster.training.ml.evidence import AUC, assess
from churn_dagster.training.ml.metrics import BINARY_NAMES, headline_auc
from churn_dagster.training.ml.sanity import finite_probabilities, finite_weights
from churn_dagster.training.ml.train import default_device
from churn_dagster.training.mlflow_logging import (
    epoch_logger,
    log_sklearn_like_model,
    log_torch_model,
)
from churn_dagster.training.registry import promote

REFERENCE = "rfm_gbm"
FAMILIES = {REFERENCE: "Reference: gradient boosting on recency, frequency, monetary value",
            "logreg": "Logistic regression", "xgboost": "XGBoost", "lstm": "LSTM", "hybrid_lstm": "Hybrid LSTM"}
TARGETS = {"binary": "churn", "level": "level"}


def registered_name(prefix: str, family: str, target: str) -> str:
    return f"{prefix}_{family}_{TARGETS[target]}"


@dataclasses.dataclass(frozen=True)
class CohortFolders:
    """Where the event-log stage left each cohort, and which cohorts have users and closed labels."""

    folder_of: Callable[[date], Path]

    def users(self, cohort: date) -> int:
        path = self.folder_of(cohort) / "labels.parquet"
        return pq.read_metadata(path).num_rows if path.exists() else 0

    def labelled(self, cohort: date) -> bool:
        path = self.folder_of(cohort) / "labels.parquet"
        if not path.exists() or pq.read_metadata(path).num_rows == 0:
            return False
        return bool(pq.read_table(path, columns=["labelled"]).column(0)[0].as_py())

    def usable(self, cohorts: list[date]) -> list[date]:
        return [c for c in cohorts if self.users(c) > 0 and self.labelled(c)]


def model_protocols(windows: Windows, folders: CohortFolders, cohort: date) -> list[Protocol]:
    """``random`` over the partition's labelled training window and ``out_of_time`` on the partition's cohort,
    trained on what was labelled when its observation closed; none when the cohort is not labelled yet."""
    if not folders.labelled(cohort):
        return []
    window = folders.usable(windows.training_window(cohort))
    earlier = folders.usable(windows.out_of_time(cohort))
    return protocols(window, earlier)


def _tables(folders: CohortFolders, cohorts: list[date], name: str, columns=None) -> pd.DataFrame:
    frames = [pd.read_parquet(folders.folder_of(c) / f"{name}.parquet", columns=columns) for c in cohorts]
    return pd.concat(frames, ignore_index=True)


def _fitter(family: str, config: dg.Config, folders: CohortFolders, cohorts: list[date], say,
            max_epochs: int | None) -> tuple[Callable, Callable, dict]:
    """``fit(target, protocol)``, ``log_model(result, target)`` and the logged params of a family."""
    if family in ("lstm", "hybrid_lstm"):
        tensors = {c: CohortTensors(folders.folder_of(c)) for c in cohorts}
        train_config, shape = hyperparameters(family, config)
        if max_epochs is not None:
            train_config = dataclasses.replace(train_config, epochs=min(train_config.epochs, max_epochs))
        kwargs, device = shape.kwargs(), default_device()

        def fit(target, protocol):
            progress = epoch_logger(target, say, f"{family} {TARGETS[target]} ({protocol.scheme})")
            return sequence_experiment("hybrid" if family == "hybrid_lstm" else "lstm", target, tensors, protocol,
                                       train_config, device, progress, **kwargs)

        def log_model(result, target):
            sample = next(iter(make_loader(SequenceDataset(result.validation.cohorts[:1], target, labelled=False,
                                                           normalization=result.normalization), 4)))
            return log_torch_model(result, sample)

        return fit, log_model, {**train_config.__dict__, **kwargs, "device": str(device)}
    kpi = _tables(folders, cohorts, "features")
    if family == REFERENCE:
        kpi = kpi[["user_id", "cohort_day", *[c for c in RFM_FEATURES if c in kpi.columns]]]
    labels = _tables(folders, cohorts, "labels")
    (settings,) = hyperparameters("logreg" if family == "logreg" else "xgboost", config)
    kind = "logreg" if family == "logreg" else "xgboost"

    def fit(target, protocol):
        return classical_experiment(kind, target, kpi, labels, protocol, settings)

    def log_model(result, target):
        return log_sklearn_like_model(result, result.validation.kpi.head(50), "sklearn" if kind == "logreg" else "xgboost")

    return fit, log_model, dataclasses.asdict(settings)


def train_event_log_family(context, prefix: str, family: str, cohort: date, windows: Windows, folders: CohortFolders,
                           config: dg.Config, mlflow_res: MlflowResource, model_folder: Path, torch_threads: int,
                           max_epochs: int | None = None) -> Iterator:
    """Train ``family`` for churn and for the level on the partition's window, register each under the
    evidence and champion rules, and write the model asset's files for the report."""
    runs = model_protocols(windows, folders, cohort)
    if not runs:
        yield dg.MaterializeResult(metadata={"trained": dg.MetadataValue.text(
            f"nothing trained: cohort {cohort} has no user or its labels close on {windows.labels_close(cohort)}, "
            "after the log's last day")}, check_results=[check("model_sane", True, "nothing trained")])
        return
    mlflow_res.check_reachable()
    cohorts = sorted(set().union(*(p.cohorts for p in runs)))
    fit, log_model, params = _fitter(family, config, folders, cohorts, context.log.info, max_epochs)
    by_key = {(t, p.scheme): p for t in TARGETS for p in runs}
    units = [Unit(key, f"{registered_name(prefix, family, key[0])} {cohort} ({key[1]})",
                  {"family": family, "target": key[0], "split_scheme": key[1], "partition": cohort.isoformat(),
                   "event_log": prefix, "cohorts": ",".join(c.isoformat() for c in p.cohorts)},
                  {**params, "family": family, "target": key[0], "split_scheme": key[1]})
             for key, p in by_key.items()]

    def log(unit, result):
        log_result(result, unit.key[0], f"{FAMILIES[family]} ({unit.key[1]})")
        return log_model(result, unit.key[0]) if unit.key[1] == "random" else None

    def candidates(logged):
        found = []
        for target in TARGETS:
            chosen = logged[(target, "random")]
            rows = chosen.result.validation
            rows.policy = mlflow_res.evidence_policy
            names = BINARY_NAMES if target == "binary" else LEVEL_NAMES
            verdict = assess(rows.policy, AUC, rows.y, rows.proba(family, chosen.result.model, chosen.result.normalization), names)
            name = registered_name(prefix, family, target)
            found.append(RegistryCandidate(name, chosen, verdict, {
                "val_auc": verdict.score, "test_auc": headline_auc(target, chosen.result.test_metrics),
                "partition": cohort.isoformat(), "labels_closed": windows.labels_close(cohort).isoformat()},
                lambda version, name=name, chosen=chosen, rows=rows: promote(
                    mlflow_res, version, Candidate(name, family, chosen.result.model, chosen.result.normalization), rows)))
        return found

    def sanity(logged, offered):
        weights = all(finite_weights(u.result.model) for u in logged.values())
        probs = all(finite_probabilities(u.result.validation.proba(family, u.result.model, u.result.normalization))
                    for u in logged.values())
        return check("model_sane", weights and probs, f"weights finite: {weights}; validation probabilities finite: "
                     f"{probs}; registry: " + "; ".join(f"{c.name}: {c.assessment.reason}" for c in offered))

    trained = train_and_register(context, mlflow_res, torch_threads, units, lambda u: fit(u.key[0], by_key[u.key]), log,
                                 candidates, sanity)
    rows = []
    for target in TARGETS:
        results = {scheme: trained.units[(target, scheme)].result for scheme in (p.scheme for p in runs)}
        promotion = trained.promotions[registered_name(prefix, family, target)]
        write_model_outputs(model_folder / TARGETS[target], results, {
            "family": family, "target": target, "registered_version": promotion.version, "champion": promotion.promoted,
            "champion_decision": promotion.describe(), "cohorts": [c.isoformat() for c in runs[0].cohorts]})
        rows += [(TARGETS[target], s, r.train_users, r.test_users, headline_auc(target, r.val_metrics),
                  headline_auc(target, r.test_metrics), round(r.seconds, 1)) for s, r in results.items()]
    yield dg.MaterializeResult(
        metadata={
            "metrics": table(["target", "protocol", "train users", "test users", "val AUC", "test AUC", "seconds"], rows),
            **{f"mlflow_run_{t}_{s}": dg.MetadataValue.url(u.url) for (t, s), u in trained.units.items()},
            "registry": dg.MetadataValue.text("; ".join(f"{n}: {p.describe()}" for n, p in trained.promotions.items())),
            "cohorts": dg.MetadataValue.text(",".join(c.isoformat() for c in runs[0].cohorts)),
        },
        check_results=[trained.sanity],
    )
