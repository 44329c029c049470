"""Session continuation on an event log (``studies: [..., continuation]``; docs/EVENT_LOGS.md, "Session
continuation"): ``<name>/continuation_examples`` and two families, ``<name>/continuation_logreg`` and
``<name>/continuation_xgboost``, one model per horizon (10, 20, 30 minutes), under the instance's key prefix
and group. The NCM study's third family, an LSTM over the session's requests, reads NCM-specific request
steps and is not built here.

The wiring is here; the bodies (imported when a step runs) call the study:
``studies/continuation/sql/event_logs.py`` for the examples and ``studies/continuation/training.train_examples``
for the models, the same training as the NCM cohorts' assets.
"""

import json

import dagster as dg

from churn_dagster.components.event_log_spec import EventLogSpec, InstancePaths
from churn_dagster.components.event_log_training import study_model_asset
from churn_dagster.core.metadata import check, frame_table, table
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.storage.duck import atomic_path, copy_to_parquet, literal_path
from churn_dagster.studies.continuation.config import CONFIG_CLASSES, FAMILIES, hyperparameters

TABULAR_FAMILIES = ("logreg", "xgboost")


def continuation_assets(spec: EventLogSpec, key, common: dict, upstream: list[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """The examples asset and the two model assets of ``spec``'s continuation study (``key``: the instance's key
    maker; ``upstream``: the events)."""
    per_user = spec.continuation_per_user

    @dg.asset(key=key("continuation_examples"), deps=upstream, kinds={"duckdb", "parquet"}, **common,
              description=f"Session continuation: up to {per_user} events a user from {spec.windows.start} on, "
                          "each with what was known then (the session so far, the user's earlier sessions) and "
                          "whether the session went on for 10, 20 and 30 more minutes; censored where the log "
                          "ends too soon to know.",
              check_specs=[dg.AssetCheckSpec("continuation_examples_valid", asset=key("continuation_examples"),
                                             blocking=True, description="labels nested (30 min implies 20 implies "
                                                                        "10) and at most the cap per user")])
    def examples(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        return examples_body(spec, lake, features.split, InstancePaths(lake.data_dir, spec.name))

    def model(family: str) -> dg.AssetsDefinition:
        return study_model_asset(
            key(f"continuation_{family}"), key("continuation_examples"), FAMILIES[family][1],
            f"Session continuation: {FAMILIES[family][0]}, one model per horizon, registered under the evidence "
            "and champion rules.", CONFIG_CLASSES[family], lambda context, config, lake, mlflow: model_body(
                context, spec, family, hyperparameters(family, config), mlflow, InstancePaths(lake.data_dir, spec.name)),
            common)

    return [examples, *(model(f) for f in TABULAR_FAMILIES)]


def examples_body(spec: EventLogSpec, lake, split, paths: InstancePaths) -> dg.MaterializeResult:
    from churn_dagster.stages.cohorts.sql.labels import split_params
    from churn_dagster.stages.events.build import event_types
    from churn_dagster.studies.continuation.sql.event_logs import examples_sql, feature_columns
    from churn_dagster.studies.continuation.sql.examples import HORIZONS_MIN, label_column

    folder = paths.root / "continuation"
    has_value = spec.mapping.value is not None
    with lake.connect() as con:
        types = event_types(con, paths.events)
        sql = examples_sql(paths.events, spec.windows.start, types, spec.mapping.session_id is not None, has_value,
                           spec.continuation_per_user)
        copy_to_parquet(con, sql, folder / "examples.parquet", split_params(split))
        frame = con.execute("SELECT * FROM read_parquet($p)", {"p": literal_path(folder / "examples.parquet")}).df()
    columns, logged = feature_columns(types, has_value)
    with atomic_path(folder / "features.json") as tmp:
        tmp.write_text(json.dumps({"columns": columns, "logged": sorted(logged)}, indent=2))
    labels = [label_column(h) for h in HORIZONS_MIN]
    nested = bool((frame[labels[2]] <= frame[labels[1]]).all() and (frame[labels[1]] <= frame[labels[0]]).all())
    capped = int(frame.groupby("user_id").size().max()) if len(frame) else 0
    return dg.MaterializeResult(
        metadata={"dagster/row_count": len(frame), "users": int(frame["user_id"].nunique()),
                  "positives": table(["horizon (min)", "examples", "continue", "share"],
                                     [(h, len(frame), int(frame[c].sum()), float(frame[c].mean()) if len(frame) else 0.0)
                                      for h, c in zip(HORIZONS_MIN, labels)]),
                  "preview": frame_table(frame.head(10).round(4))},
        check_results=[check("continuation_examples_valid", nested and capped <= spec.continuation_per_user,
                             f"labels nested: {nested}; most examples of one user: {capped} (cap "
                             f"{spec.continuation_per_user})")])


def model_body(context, spec: EventLogSpec, family: str, params: tuple, mlflow_res, paths: InstancePaths):
    import pandas as pd

    from churn_dagster.studies.continuation.ml.models import train_tabular
    from churn_dagster.studies.continuation.training import train_examples

    mlflow_res.check_reachable()  # before anything else: a transient outage is retried, not half-trained
    folder = paths.root / "continuation"
    examples = pd.read_parquet(folder / "examples.parquet")
    features = json.loads((folder / "features.json").read_text())
    chosen = (features["columns"], frozenset(features["logged"]))
    yield from train_examples(
        context, spec.torch_threads, family, params, examples,
        lambda horizon: train_tabular(family, examples, horizon, params[0], chosen), folder / "models" / family,
        lambda horizon: f"{spec.name}_continuation_{family}_{horizon}min", spec.windows.start.isoformat(),
        {"task": "continuation", "family": family, "event_log": spec.name}, mlflow_res)
