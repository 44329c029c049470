"""Churn risk scores for the users of the newest observation window as of each labelled cohort, from the
best champions as of that window (:mod:`churn_dagster.studies.churn.scoring_window` builds their features).

A window is scored as it would have been on the day it closed: each family's champion is the newest promoted
version whose training labels had all closed by then (``labels_closed``), never a later one, so
re-materialising an old window does not use a model that trained on its users or on labels from after it. When
no family has such a version, nothing is written and the step says so in one line.
"""

import json

import dagster as dg
import pandas as pd

from churn_dagster.core.constants import OWNERS, TARGETS
from churn_dagster.core.metadata import check, frame_table, image_markdown
from churn_dagster.core.metadata import table as metadata_table
from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.storage.duck import atomic_dir
from churn_dagster.storage.lake import Lake, read_cohort_tables, require
from churn_dagster.studies.churn.config import FAMILIES, MODEL_CODE_VERSION, model_name

TARGET_WORDS = {"binary": "churn", "level": "level"}


def _stored_thresholds(lake: Lake, cohort):
    """The level thresholds the level models of partition ``cohort`` fit on their random-protocol training users,
    read back from their files (every family fits the same ones: the same training users)."""
    from churn_dagster.domain.engagement import Thresholds

    for family in FAMILIES:
        path = lake.model(model_name(family, "level"), cohort) / "metrics.json"
        if path.exists():
            return Thresholds.from_dict(json.loads(path.read_text())["schemes"]["random"]["thresholds"])
    raise FileNotFoundError(f"no level model of partition {cohort} has written its thresholds")


def _evaluation_rows(p: Partitions, lake: Lake, cohort, target: str, policy, thresholds_of):
    """The validation users of the partition's training cohorts, in the forms every family reads, the levels
    under the thresholds of model partition ``thresholds_of``; tensors, KPI features and labels must hold the
    same users with the same splits."""
    from churn_dagster.domain.engagement import level_labels
    from churn_dagster.stages.tensors.ml.data import CohortTensors
    from churn_dagster.training.ml.champions import EvaluationRows
    from churn_dagster.training.ml.classical import kpi_feature_columns

    tensors = {c: CohortTensors(lake.tensors(c)) for c in p.training_cohorts(cohort)}  # each build resolved once
    cohorts = [c for c, t in tensors.items() if t.meta["users"] > 0]
    labels = read_cohort_tables(lake, "label_scores", cohorts)
    kpi = read_cohort_tables(lake, "kpi_features", cohorts)
    _same_users_and_splits(labels, kpi, pd.concat([tensors[c].users for c in cohorts], ignore_index=True))
    val = (labels["split"] == "validation").to_numpy()
    y = labels["churned"].to_numpy(int)[val] if target == "binary" else level_labels(
        labels[val].reset_index(drop=True), _stored_thresholds(lake, thresholds_of))
    return EvaluationRows(target, y, kpi=kpi.loc[val, kpi_feature_columns(kpi)].reset_index(drop=True),
                          cohorts=[tensors[c] for c in cohorts], split="validation", policy=policy)


def _same_users_and_splits(labels: pd.DataFrame, kpi: pd.DataFrame, tensor_users: pd.DataFrame) -> None:
    """Every family must be compared on the same users: the label rows, the KPI rows (same order) and the
    tensors' users (same users, same split each), else a cohort was rebuilt under other settings in between."""
    if not (kpi["user_id"].to_numpy() == labels["user_id"].to_numpy()).all():
        raise ValueError("kpi_features and label_scores list different users; rebuild the cohorts")
    splits = labels.set_index("user_id")["split"]
    theirs = tensor_users.set_index("user_id")["split"]
    if len(theirs) != len(splits) or not theirs.index.isin(splits.index).all():
        raise ValueError("sequence_tensors and label_scores list different users; rebuild the cohorts' tensors")
    moved = int((theirs != splits.loc[theirs.index]).sum())
    if moved:
        raise ValueError(f"sequence_tensors and label_scores put {moved} users in different splits; rebuild the "
                         "cohorts' tensors")


def _predict(registered, area: Lake, window, target: str):
    """(users, probabilities) of a registered model for the window's users."""
    from churn_dagster.studies.churn.ml import scoring
    from churn_dagster.training.ml.champions import SEQUENCE_FAMILIES

    candidate = registered.candidate
    if candidate.family in SEQUENCE_FAMILIES:
        return scoring.sequence_proba(candidate.model, area.tensors(window), target, candidate.normalization)
    kpi = pd.read_parquet(require([area.cohort("kpi_features", window)], "churn_risk_scores")[0])
    return scoring.classical_proba(candidate.model, kpi, target)


def risk_score_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """``churn_risk_scores``."""

    @dg.asset(
        description="Per-user churn risk for the newest observation window as of the partition: churn probability "
        "from the best churn champion, predicted engagement level and the five level probabilities from the best "
        "level champion. Each family's champion is taken as of the day the window closed: the newest promoted version "
        "whose training labels had closed by then. Best = highest AUC when those champions are scored on the same "
        "users (the validation users of the partition's training cohorts). Parquet and CSV under "
        "scores/window=<last day>/; nothing is written when no model could have scored the window on its day.",
        group_name="scoring",
        kinds={"python", "parquet", "mlflow"},
        owners=OWNERS,
        code_version=MODEL_CODE_VERSION,
        partitions_def=p.cohort_partitions,
        output_required=False,  # nothing is written when no model could have scored the window on its day
        deps=["scoring_window", *(model_name(f, t) for f in FAMILIES for t in TARGETS),
              *(dg.AssetDep(a, partition_mapping=p.training_window) for a in ("kpi_features", "label_scores", "sequence_tensors"))],
        check_specs=[
            dg.AssetCheckSpec("probabilities_valid", asset="churn_risk_scores",
                              description="Probabilities in [0, 1]; each user's level probabilities sum to 1."),
            dg.AssetCheckSpec("covers_window", asset="churn_risk_scores", description="Every window user is scored once."),
        ],
    )
    def churn_risk_scores(context: dg.AssetExecutionContext, lake: LakeResource, mlflow: MlflowResource):
        from churn_dagster.studies.churn.ml import scoring
        from churn_dagster.training.ml import plots
        from churn_dagster.training.registry import (  # model code loads when scoring runs
            best_champion,
            champions_as_of,
        )

        cohort = parse_day(context.partition_key)
        window = p.scored_cohort(cohort)
        as_of = p.calendar.observation_closed(window)
        area = lake.lake.scoring()
        found = {t: champions_as_of(mlflow, {f: model_name(f, t) for f in FAMILIES}, as_of) for t in TARGETS}
        missing = [TARGET_WORDS[t] for t in TARGETS if not found[t]]
        if missing:
            reason = (f"nothing scored for the window closing {as_of}: no {' and no '.join(missing)} model was promoted "
                      f"from labels closed by then")
            context.log.warning(reason)
            yield from (dg.AssetCheckResult(check_name=name, passed=True, description=reason)
                        for name in ("probabilities_valid", "covers_window"))
            return
        # The level labels of the comparison rows: the thresholds of the newest eligible level champion's partition.
        newest = max((v for _, _, v in found["level"]), key=lambda v: json.loads(v.tags["labels_closed"]))
        thresholds_of = parse_day(json.loads(newest.tags["partition"]))
        chosen, aucs = {}, {}
        for target in TARGETS:
            rows = _evaluation_rows(p, lake.lake, cohort, target, mlflow.evidence_policy, thresholds_of)
            chosen[target], aucs[target] = best_champion(mlflow, found[target], rows)
        table = scoring.risk_table(_predict(chosen["binary"], area, window, "binary"),
                                   _predict(chosen["level"], area, window, "level"))
        last_day = p.calendar.day(p.calendar.observation_dts(window)[-1])
        folder = lake.lake.root / "scores" / f"window={last_day.isoformat()}"
        with atomic_dir(folder) as out:
            table.to_parquet(out / "churn_risk_scores.parquet", index=False)
            table.to_csv(out / "churn_risk_scores.csv", index=False)
            plots.plot_histogram(table["churn_probability"], out / "churn_probability_histogram.png",
                                 f"Churn probability, users first seen on {window}", "P(churn)")
        level_probs = table.filter(like="p_").to_numpy()
        window_users = len(pd.read_parquet(area.cohort("cohort_users", window), columns=["user_id"]))
        counts = table["predicted_level_name"].value_counts()
        comparison = [(t, name, auc)  # None: the champion cannot score these rows
                      for t in TARGETS for name, auc in aucs[t].items()]
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": dg.MetadataValue.int(len(table)),
                "scored_cohort": dg.MetadataValue.text(window.isoformat()),
                "models_as_of": dg.MetadataValue.text(f"{as_of}: champions whose training labels had closed by then"),
                "churn_model": dg.MetadataValue.text(chosen["binary"].describe()),
                "level_model": dg.MetadataValue.text(chosen["level"].describe()),
                "champions_on_the_same_users": metadata_table(["target", "champion", "AUC"], comparison),
                "mean_churn_probability": dg.MetadataValue.float(float(table["churn_probability"].mean()) if len(table) else 0.0),
                "users_per_predicted_level": metadata_table(
                    ["level", "users"], [(name, int(counts.get(name, 0))) for name in scoring.LEVEL_NAMES]),
                "churn_probability_histogram": dg.MetadataValue.md(image_markdown(
                    folder / "churn_probability_histogram.png", "histogram")),
                "highest_risk": frame_table(table.head(10).iloc[:, :4]),
                "path": dg.MetadataValue.path(str(folder / "churn_risk_scores.parquet")),
            },
            check_results=[
                check("probabilities_valid",
                      bool(table["churn_probability"].between(0, 1).all()
                           and (len(table) == 0 or abs(level_probs.sum(axis=1) - 1).max() < 1e-5)),
                      "P(churn) within [0, 1], level probabilities sum to 1"),
                check("covers_window", len(table) == window_users and table["user_id"].is_unique,
                      f"{len(table)} scored users, {window_users} users in the window"),
            ],
        )

    return [churn_risk_scores]
