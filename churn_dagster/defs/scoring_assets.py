"""Churn risk scores for the newest observation window as of each labelled cohort.

Scoring partition X belongs to the day X's label period ends, D = X + observation + label - 1: the users to
score are those first seen on X + label_days, whose observation window ends on D. Their label period lies in
the future, so they have no partition among the labelled cohorts; ``scoring_window`` builds their membership,
sessions, features and unlabelled tensors with the same transforms into ``scoring/``, reading exactly the days
its partition mappings declare, and ``churn_risk_scores`` applies the best champions as of X.
"""

import json

import dagster as dg
import pandas as pd

from churn_dagster.calendar import parse_day
from churn_dagster.defs.metadata import check, image_markdown, markdown_table, parquet_metadata
from churn_dagster.defs.mlflow_resource import MlflowResource
from churn_dagster.defs.model_assets import FAMILIES, MODEL_CODE_VERSION, model_name
from churn_dagster.defs.partitions import (
    CALENDAR,
    cohort_partitions,
    scored_cohort,
    scoring_membership_days,
    scoring_observation_days,
    training_cohorts,
    training_window,
)
from churn_dagster.defs.raw_assets import OWNERS
from churn_dagster.defs.resources import FeatureSettingsResource, LakeResource
from churn_dagster.transforms import cohorts as cohort_sql
from churn_dagster.transforms import features as feature_sql
from churn_dagster.transforms import sessions as session_sql
from churn_dagster.transforms import tensors as tensor_build
from churn_dagster.transforms.duck import atomic_dir
from churn_dagster.transforms.lake import Lake, require

TARGETS = ("binary", "level")


@dg.asset(
    description="Membership, sessions, static and KPI features and unlabelled tensors of the users first seen on "
    "the partition's day + label days, whose observation window ends the day the partition's label period ends; "
    "built by the cohort transforms into scoring/. Values are raw: each model imputes and scales them with its "
    "own training statistics.",
    group_name="scoring",
    kinds={"duckdb", "parquet", "numpy"},
    owners=OWNERS,
    code_version="3",  # 3: the content-stats KPI columns
    partitions_def=cohort_partitions,
    deps=[
        dg.AssetDep("user_day_activity", partition_mapping=scoring_membership_days),
        dg.AssetDep("raw_impressions", partition_mapping=scoring_observation_days),
        dg.AssetDep("raw_mlog_stats", partition_mapping=scoring_observation_days),
        dg.AssetDep("raw_creator_stats", partition_mapping=scoring_observation_days),
        "raw_user_demographics", "raw_mlog_demographics", "raw_creator_demographics",
    ],
    check_specs=[dg.AssetCheckSpec("features_cover_window", asset="scoring_window", blocking=True,
                                   description="Every window user has static and KPI features and a tensor row.")],
)
def scoring_window(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
    window = scored_cohort(parse_day(context.partition_key))
    area = lake.lake.scoring()
    with lake.connect() as con:
        users = cohort_sql.build_cohort_users(con, area, CALENDAR, [window])[window]
        n_sessions = session_sql.build_sessions(con, area, CALENDAR, [window], features.session_gap_minutes)[window]
        static = feature_sql.build_static_features(con, area, CALENDAR, [window], features.use_follow_count)[window]
        kpi = feature_sql.build_kpi_features(con, area, CALENDAR, [window], features.publish_day_anchor,
                                             features.use_follow_count, features.use_content_stats)[window]
        summary = tensor_build.build_tensors(con, area, window, features.max_sessions, labelled=False)
        meta = parquet_metadata(con, [area.cohort("kpi_features", window)])
    days = CALENDAR.observation_dts(window)
    meta.update({
        "scored_cohort": dg.MetadataValue.text(window.isoformat()),
        "observation_days": dg.MetadataValue.text(f"{CALENDAR.day(days[0])} .. {CALENDAR.day(days[-1])}"),
        "users": dg.MetadataValue.int(users),
        "sessions": dg.MetadataValue.int(n_sessions),
        **features.metadata(),
    })
    if users == 0:
        meta["note"] = dg.MetadataValue.text(f"no user was first seen on {window}: the window is empty")
    covered = users == static == kpi == summary.users
    return dg.MaterializeResult(metadata=meta, check_results=[
        check("features_cover_window", covered, f"{users} users, {static} static rows, {kpi} KPI rows, "
              f"{summary.users} tensor rows"),
    ])


def _stored_thresholds(lake: Lake, cohort):
    """The level thresholds the partition's level models fit on their random-protocol training users, read
    back from their files (every family fits the same ones: the same training users)."""
    from churn_dagster.engagement import Thresholds

    for family in FAMILIES:
        path = lake.model(model_name(family, "level"), cohort) / "metrics.json"
        if path.exists():
            return Thresholds.from_dict(json.loads(path.read_text())["schemes"]["random"]["thresholds"])
    raise FileNotFoundError(f"no level model of partition {cohort} has written its thresholds")


def _evaluation_rows(lake: Lake, cohort, target: str):
    """The validation users of the partition's training cohorts, in the forms every family reads."""
    from churn_dagster.defs.model_training import read_cohort_tables
    from churn_dagster.engagement import level_labels
    from churn_dagster.ml.champions import EvaluationRows
    from churn_dagster.ml.classical import kpi_feature_columns
    from churn_dagster.ml.data import CohortTensors

    tensors = {c: CohortTensors(lake.tensors(c)) for c in training_cohorts(cohort)}  # each build resolved once
    cohorts = [c for c, t in tensors.items() if t.meta["users"] > 0]
    labels = read_cohort_tables(lake, "label_scores", cohorts)
    kpi = read_cohort_tables(lake, "kpi_features", cohorts)
    if not (kpi["user_id"].to_numpy() == labels["user_id"].to_numpy()).all():
        raise ValueError("kpi_features and label_scores list different users; rebuild the cohorts")
    val = (labels["split"] == "validation").to_numpy()
    y = labels["churned"].to_numpy(int)[val] if target == "binary" else level_labels(
        labels[val].reset_index(drop=True), _stored_thresholds(lake, cohort))
    return EvaluationRows(target, y, kpi=kpi.loc[val, kpi_feature_columns(kpi)].reset_index(drop=True),
                          cohorts=[tensors[c] for c in cohorts], split="validation")


def _predict(registered, area: Lake, window, target: str):
    """(users, probabilities) of a registered model for the window's users."""
    from churn_dagster.ml import scoring
    from churn_dagster.ml.champions import SEQUENCE_FAMILIES

    candidate = registered.candidate
    if candidate.family in SEQUENCE_FAMILIES:
        return scoring.sequence_proba(candidate.model, area.tensors(window), target, candidate.normalization)
    kpi = pd.read_parquet(require([area.cohort("kpi_features", window)], "churn_risk_scores")[0])
    return scoring.classical_proba(candidate.model, kpi, target)


@dg.asset(
    description="Per-user churn risk for the newest observation window as of the partition: churn probability "
    "from the best churn champion, predicted engagement level and the five level probabilities from the best "
    "level champion. Best = highest AUC when every family's champion is scored on the same users (the "
    "validation users of the partition's training cohorts). Parquet and CSV under scores/window=<last day>/.",
    group_name="scoring",
    kinds={"python", "parquet", "mlflow"},
    owners=OWNERS,
    code_version=MODEL_CODE_VERSION,
    partitions_def=cohort_partitions,
    deps=["scoring_window", *(model_name(f, t) for f in FAMILIES for t in TARGETS),
          *(dg.AssetDep(a, partition_mapping=training_window) for a in ("kpi_features", "label_scores", "sequence_tensors"))],
    check_specs=[
        dg.AssetCheckSpec("probabilities_valid", asset="churn_risk_scores",
                          description="Probabilities in [0, 1]; each user's level probabilities sum to 1."),
        dg.AssetCheckSpec("covers_window", asset="churn_risk_scores", description="Every window user is scored once."),
    ],
)
def churn_risk_scores(context: dg.AssetExecutionContext, lake: LakeResource, mlflow: MlflowResource):
    from churn_dagster.defs.champions import best_champion  # model code loads when scoring runs
    from churn_dagster.ml import plots, scoring

    cohort = parse_day(context.partition_key)
    window = scored_cohort(cohort)
    area = lake.lake.scoring()
    chosen, aucs = {}, {}
    for target in TARGETS:
        rows = _evaluation_rows(lake.lake, cohort, target)
        chosen[target], aucs[target] = best_champion(mlflow, {f: model_name(f, target) for f in FAMILIES}, rows)
    table = scoring.risk_table(_predict(chosen["binary"], area, window, "binary"),
                               _predict(chosen["level"], area, window, "level"))
    last_day = CALENDAR.day(CALENDAR.observation_dts(window)[-1])
    folder = lake.lake.root / "scores" / f"window={last_day.isoformat()}"
    with atomic_dir(folder) as out:
        table.to_parquet(out / "churn_risk_scores.parquet", index=False)
        table.to_csv(out / "churn_risk_scores.csv", index=False)
        plots.plot_histogram(table["churn_probability"], out / "churn_probability_histogram.png",
                             f"Churn probability, users first seen on {window}", "P(churn)")
    level_probs = table.filter(like="p_").to_numpy()
    window_users = len(pd.read_parquet(area.cohort("cohort_users", window), columns=["user_id"]))
    counts = table["predicted_level_name"].value_counts()
    comparison = [(t, name, f"{auc:.4f}" if auc is not None else "cannot score these rows")
                  for t in TARGETS for name, auc in aucs[t].items()]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(table)),
            "scored_cohort": dg.MetadataValue.text(window.isoformat()),
            "churn_model": dg.MetadataValue.text(chosen["binary"].describe()),
            "level_model": dg.MetadataValue.text(chosen["level"].describe()),
            "champions_on_the_same_users": dg.MetadataValue.md(markdown_table(["target", "champion", "AUC"], comparison)),
            "mean_churn_probability": dg.MetadataValue.float(float(table["churn_probability"].mean()) if len(table) else 0.0),
            "users_per_predicted_level": dg.MetadataValue.md(markdown_table(
                ["level", "users"], [(name, int(counts.get(name, 0))) for name in scoring.LEVEL_NAMES])),
            "churn_probability_histogram": dg.MetadataValue.md(image_markdown(
                folder / "churn_probability_histogram.png", "histogram")),
            "highest_risk": dg.MetadataValue.md(markdown_table(list(table.columns[:4]), table.head(10).iloc[:, :4].values)),
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
