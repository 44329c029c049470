"""Churn risk scores for the latest observation window: the users whose 14 days end on the newest day of data.

Their label period lies in the future, so they have no partition among the labelled cohorts; the
``scoring_window`` asset builds their membership, sessions, features and (unstandardised) tensors with the
same transforms into ``scoring/``, and ``churn_risk_scores`` applies the champion models.
"""

import json
from datetime import date, timedelta

import dagster as dg
import pandas as pd

from churn_dagster.defs.metadata import check, image_markdown, markdown_table, parquet_metadata
from churn_dagster.defs.mlflow_resource import MlflowResource
from churn_dagster.defs.model_assets import FAMILIES, model_name
from churn_dagster.calendar import parse_day
from churn_dagster.defs.partitions import CALENDAR, cohort_partitions
from churn_dagster.defs.raw_assets import OWNERS
from churn_dagster.defs.resources import FeatureSettingsResource, LakeResource
from churn_dagster.transforms import cohorts as cohort_sql
from churn_dagster.transforms import features as feature_sql
from churn_dagster.transforms import sessions as session_sql
from churn_dagster.transforms import tensors as tensor_build
from churn_dagster.transforms.duck import atomic_path
from churn_dagster.transforms.lake import Lake, MissingUpstreamError, require


def newest_ingested_day(lake: Lake) -> date:
    """The last day whose impressions are loaded: "today" for the daily flow, the last day for a backfill."""
    days = [d for d in map(CALENDAR.day, range(1, CALENDAR.num_days + 1)) if lake.raw_day("impression_data", d).exists()]
    if not days:
        raise MissingUpstreamError("no day of raw_impressions is materialized yet")
    return max(days)


def newest_labelled_tensors(lake: Lake) -> date:
    cohorts = [parse_day(k) for k in cohort_partitions.get_partition_keys()]
    ready = [c for c in cohorts if (lake.tensors(c) / "normalization.json").exists()]
    if not ready:
        raise MissingUpstreamError("no labelled cohort has sequence_tensors yet")
    return max(ready)


@dg.asset(
    description="Membership, sessions, static and KPI features and tensors of the latest observation window "
    "(the cohort whose 14 days end on the newest ingested day), built by the cohort transforms into "
    "scoring/. Imputation values come from the newest labelled cohort's training split. scoring/window.json "
    "names the current window.",
    group_name="scoring",
    kinds={"duckdb", "parquet", "numpy"},
    owners=OWNERS,
    deps=[
        "user_day_activity", "raw_impressions", "raw_user_demographics", "raw_mlog_demographics",
        "raw_creator_demographics", dg.AssetDep("sequence_tensors", partition_mapping=dg.LastPartitionMapping()),
    ],
    check_specs=[dg.AssetCheckSpec("features_cover_window", asset="scoring_window",
                                   description="Every window user has static and KPI features and a tensor row.")],
)
def scoring_window(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
    newest = newest_ingested_day(lake.lake)
    cohort = newest - timedelta(days=CALENDAR.observation_days - 1)
    if cohort < CALENDAR.first_day:
        raise MissingUpstreamError(f"only data up to {newest}: no complete {CALENDAR.observation_days}-day window yet")
    area = lake.lake.scoring()
    reference_cohort = newest_labelled_tensors(lake.lake)
    reference = json.loads((lake.lake.tensors(reference_cohort) / "normalization.json").read_text())
    with lake.connect() as con:
        users = cohort_sql.build_cohort_users(con, area, CALENDAR, [cohort])[cohort]
        n_sessions = session_sql.build_sessions(con, area, CALENDAR, [cohort], features.session_gap_minutes)[cohort]
        static = feature_sql.build_static_features(con, area, CALENDAR, [cohort])[cohort]
        kpi = feature_sql.build_kpi_features(con, area, CALENDAR, [cohort], features.publish_day_anchor)[cohort]
        summary = tensor_build.build_tensors(con, area, cohort, features.max_sessions, reference)
        meta = parquet_metadata(con, [area.cohort("kpi_features", cohort)])
    window = {"cohort": cohort.isoformat(), "newest_day": newest.isoformat(),
              "reference_cohort": reference_cohort.isoformat()}
    with atomic_path(lake.lake.root / "scoring" / "window.json") as tmp:
        tmp.write_text(json.dumps(window, indent=2))
    meta.update({
        "cohort": dg.MetadataValue.text(cohort.isoformat()),
        "observation_days": dg.MetadataValue.text(f"{cohort} .. {newest}"),
        "users": dg.MetadataValue.int(users),
        "sessions": dg.MetadataValue.int(n_sessions),
        "imputation_reference_cohort": dg.MetadataValue.text(reference_cohort.isoformat()),
    })
    covered = users == static == kpi == summary.users
    return dg.MaterializeResult(metadata=meta, check_results=[
        check("features_cover_window", covered, f"{users} users, {static} static rows, {kpi} KPI rows, "
              f"{summary.users} tensor rows"),
    ])


def _predict(model, area: Lake, cohort, target: str):
    """Probabilities of a ``LoadedModel`` for the window's users (tensors or KPI table, by family)."""
    from churn_dagster.defs.champions import SEQUENCE_FAMILIES
    from churn_dagster.ml import scoring

    if model.family in SEQUENCE_FAMILIES:
        return scoring.sequence_proba(model.model, area.tensors(cohort), target, model.normalization)
    kpi = pd.read_parquet(require([area.cohort("kpi_features", cohort)], "churn_risk_scores")[0])
    return scoring.classical_proba(model.model, kpi, target)


@dg.asset(
    description="Per-user churn risk for the latest observation window: churn probability from the best "
    "binary champion, predicted engagement level and the five level probabilities from the best level "
    "champion (best = highest validation AUC among the families' champions). Parquet and CSV.",
    group_name="scoring",
    kinds={"python", "parquet", "mlflow"},
    owners=OWNERS,
    deps=["scoring_window", *(model_name(f, t) for f in FAMILIES for t in ("binary", "level"))],
    check_specs=[
        dg.AssetCheckSpec("probabilities_valid", asset="churn_risk_scores",
                          description="Probabilities in [0, 1]; each user's level probabilities sum to 1."),
        dg.AssetCheckSpec("covers_window", asset="churn_risk_scores", description="Every window user is scored once."),
    ],
)
def churn_risk_scores(context: dg.AssetExecutionContext, lake: LakeResource, mlflow: MlflowResource):
    from churn_dagster.defs.champions import best_champion  # model code loads when scoring runs
    from churn_dagster.ml import plots, scoring

    cohort = date.fromisoformat(json.loads((lake.lake.root / "scoring" / "window.json").read_text())["cohort"])
    area = lake.lake.scoring()
    churn_model = best_champion(mlflow, {f: model_name(f, "binary") for f in FAMILIES})
    level_model = best_champion(mlflow, {f: model_name(f, "level") for f in FAMILIES})
    table = scoring.risk_table(_predict(churn_model, area, cohort, "binary"), _predict(level_model, area, cohort, "level"))
    out = lake.lake.root / "scores"
    with atomic_path(out / "churn_risk_scores.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    with atomic_path(out / "churn_risk_scores.csv") as tmp:
        table.to_csv(tmp, index=False)
    histogram = plots.plot_histogram(table["churn_probability"], out / "churn_probability_histogram.png",
                                     f"Churn probability, cohort {cohort}", "P(churn)")
    level_probs = table.filter(like="p_").to_numpy()
    window_users = len(pd.read_parquet(area.cohort("cohort_users", cohort), columns=["user_id"]))
    counts = table["predicted_level_name"].value_counts()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(len(table)),
            "cohort": dg.MetadataValue.text(cohort.isoformat()),
            "churn_model": dg.MetadataValue.text(churn_model.describe()),
            "level_model": dg.MetadataValue.text(level_model.describe()),
            "mean_churn_probability": dg.MetadataValue.float(float(table["churn_probability"].mean())),
            "users_per_predicted_level": dg.MetadataValue.md(markdown_table(
                ["level", "users"], [(name, int(counts.get(name, 0))) for name in scoring.LEVEL_NAMES])),
            "churn_probability_histogram": dg.MetadataValue.md(image_markdown(histogram, "histogram")),
            "highest_risk": dg.MetadataValue.md(markdown_table(list(table.columns[:4]), table.head(10).iloc[:, :4].values)),
            "path": dg.MetadataValue.path(str(out / "churn_risk_scores.parquet")),
        },
        check_results=[
            check("probabilities_valid",
                  bool(table["churn_probability"].between(0, 1).all() and abs(level_probs.sum(axis=1) - 1).max() < 1e-5),
                  "P(churn) within [0, 1], level probabilities sum to 1"),
            check("covers_window", len(table) == window_users and table["user_id"].is_unique,
                  f"{len(table)} scored users, {window_users} users in the window"),
        ],
    )
