"""The case study on an event log (``studies: [..., case_study]``; docs/EVENT_LOGS.md, "The case study"):
``<name>/case_study_data`` and the NCM case study's four families, ``<name>/case_study_<family>``, each
with and without upsampling, under the instance's key prefix and group.

The wiring is here; the bodies (imported when a step runs, with scikit-learn and MLflow) call the study:
``studies/case_study/sql/event_logs.py`` for the tables and ``studies/case_study/training.train_design`` for
the models, the same training as the NCM tables' assets.
"""

import json

import dagster as dg
import pandas as pd

from churn_dagster.components.event_log_spec import EventLogSpec, InstancePaths
from churn_dagster.components.event_log_training import study_model_asset
from churn_dagster.core.metadata import check, frame_table, table
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.storage.duck import atomic_path, literal_path
from churn_dagster.studies.case_study.models import CONFIG_CLASSES, FAMILIES, hyperparameters
from churn_dagster.studies.case_study.names import FAMILY_LABELS


def case_study_assets(spec: EventLogSpec, key, common: dict, upstream: list[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """The data asset and the four model assets of ``spec``'s case study (``key``: the instance's key maker;
    ``upstream``: the events and, where there is one, the users table)."""
    w = spec.case_study

    @dg.asset(key=key("case_study_data"), deps=upstream, kinds={"duckdb", "parquet"}, **common,
              description=f"Case study: users with an event in the first {w.feature_days} days from "
                          f"{w.start}, their feature-day counts, and whether their rate of "
                          f"{', '.join(w.response)} per {', '.join(w.exposure)} over the next {w.target_days} "
                          "days is above the training users' mean (the threshold, fit on them, is stored).",
              check_specs=[dg.AssetCheckSpec("case_study_data_valid", asset=key("case_study_data"), blocking=True,
                                             description="one label per user of the features; the target days "
                                                         "inside the log; a threshold fit on training users")])
    def data(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        return data_body(spec, lake, features.split, InstancePaths(lake.data_dir, spec.name))

    def model(family: str) -> dg.AssetsDefinition:
        return study_model_asset(
            key(f"case_study_{family}"), key("case_study_data"), "scikit-learn",
            f"Case study: {FAMILY_LABELS[family]} predicting an above-mean response rate, without and with the "
            "active training users upsampled, one MLflow run each, registered under the evidence and champion rules.",
            CONFIG_CLASSES[family], lambda context, config, lake, mlflow: model_body(
                context, spec, family, hyperparameters(family, config), mlflow, InstancePaths(lake.data_dir, spec.name)),
            common)

    return [data, *(model(f) for f in FAMILIES)]


def _attributes(spec: EventLogSpec, paths: InstancePaths) -> tuple[pd.DataFrame | None, list[str], list[str]]:
    """The users table's attributes by user, named ``user_<attribute>``, and which of them are numbers (every
    value a number) and which categories."""
    if spec.users is None:
        return None, [], []
    attributes = spec.users[1].attributes
    frame = pd.read_parquet(paths.users, columns=["user_id", *(f"a_{k}" for k in range(len(attributes)))])
    frame.columns = ["user_id", *(f"user_{a}" for a in attributes)]
    numbers, categories = [], []
    for column in frame.columns[1:]:
        values = frame[column].astype("string").str.strip().replace("", pd.NA)
        as_number = pd.to_numeric(values, errors="coerce")
        if as_number.notna().sum() == values.notna().sum():
            frame[column], numbers = as_number.astype("float64"), [*numbers, column]
        else:
            frame[column], categories = values.astype(object), [*categories, column]
    return frame, numbers, categories


def data_body(spec: EventLogSpec, lake, split, paths: InstancePaths) -> dg.MaterializeResult:
    from churn_dagster.stages.events.build import event_types
    from churn_dagster.studies.case_study.sql.event_logs import build_tables

    w, folder = spec.case_study, paths.root / "case_study"
    users, numbers, categories = _attributes(spec, paths)
    with lake.connect() as con:
        types = event_types(con, paths.events)
        last_day = con.execute("SELECT max(local_day) FROM read_parquet($p)",
                               {"p": literal_path(paths.events)}).fetchone()[0]
        features, labels, threshold = build_tables(con, paths.events, w, types, spec.mapping.value is not None,
                                                   split, folder, users)
    columns = {"counts": ["events", "active_days", *(c for c in features.columns if c.startswith("n_"))],
               "numbers": [*(["value_sum"] if "value_sum" in features else []), *numbers], "categories": categories}
    with atomic_path(folder / "columns.json") as tmp:
        tmp.write_text(json.dumps(columns, indent=2))
    same_users = features["user_id"].tolist() == labels["user_id"].tolist() and labels["user_id"].is_unique
    covered = last_day is not None and last_day >= w.target_last
    fitted = threshold["threshold"] is not None
    by_split = labels.groupby("split")["active"].agg(["count", "mean"]).reset_index()
    return dg.MaterializeResult(
        metadata={"dagster/row_count": len(features), "threshold": threshold["threshold"],
                  "threshold_fitted_on_users": threshold["fitted_on_users"],
                  "users": table(["split", "users", "active share"],
                                 [(r.split, int(r.count), float(r.mean)) for r in by_split.itertuples()]),
                  "preview": frame_table(features.head(10).round(4))},
        check_results=[check("case_study_data_valid", same_users and covered and fitted, "; ".join([
            f"{len(features)} users, one label each: {same_users}",
            f"the log's last day {last_day} covers the target days up to {w.target_last}: {covered}",
            f"threshold {threshold['threshold']} fit on {threshold['fitted_on_users']} training users with an "
            "exposure in the target days" if fitted else "no training user has an exposure in the target days"]))])


def model_body(context, spec: EventLogSpec, family: str, hyper: tuple, mlflow_res, paths: InstancePaths):
    from churn_dagster.studies.case_study.ml import models as cs
    from churn_dagster.studies.case_study.training import train_design

    mlflow_res.check_reachable()  # before anything else: a transient outage is retried, not half-trained
    folder = paths.root / "case_study"
    columns = json.loads((folder / "columns.json").read_text())
    d = cs.design(pd.read_parquet(folder / "features.parquet"), pd.read_parquet(folder / "labels.parquet"),
                  cs.Columns(tuple(columns["counts"]), tuple(columns["numbers"]), tuple(columns["categories"])))
    suffix = {"plain": "", "upsampled": "_upsampled"}
    yield from train_design(context, spec.torch_threads, family, hyper, d, folder / "models" / family,
                            lambda variant: f"{spec.name}_case_study_{family}{suffix[variant]}",
                            {"study": "case_study", "event_log": spec.name}, mlflow_res)
