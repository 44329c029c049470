"""Session continuation on an event log (``studies: [..., continuation]``; docs/EVENT_LOGS.md, "Session
continuation"): ``<name>/continuation_examples`` and the NCM study's three families,
``<name>/continuation_logreg``, ``<name>/continuation_xgboost`` and ``<name>/continuation_lstm`` (over the
events of the session so far), one model per horizon (10, 20, 30 minutes), under the instance's key prefix and
group.

The wiring is here; the bodies (imported when a step runs) call the study:
``studies/continuation/sql/event_logs.py`` for the examples and the LSTM's steps, and
``studies/continuation/training.train_examples`` for the models, the same training as the NCM cohorts' assets.
"""

import json

import dagster as dg

from churn_dagster.components.event_log_spec import EventLogSpec, InstancePaths
from churn_dagster.components.event_log_training import study_model_asset
from churn_dagster.core.metadata import check, frame_table, table
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.storage.duck import atomic_path, copy_to_parquet, literal_path
from churn_dagster.studies.continuation.config import CONFIG_CLASSES, FAMILIES, hyperparameters

EVENT_LOG_FAMILIES = ("logreg", "xgboost", "lstm")


def continuation_assets(spec: EventLogSpec, key, common: dict, upstream: list[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """The examples asset and the three model assets of ``spec``'s continuation study (``key``: the instance's key
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

    return [examples, *(model(f) for f in EVENT_LOG_FAMILIES)]


def examples_body(spec: EventLogSpec, lake, split, paths: InstancePaths) -> dg.MaterializeResult:
    from churn_dagster.stages.cohorts.sql.labels import split_params
    from churn_dagster.stages.events.build import event_types
    from churn_dagster.studies.continuation.sql.event_logs import (
        EVENTS_TABLE,
        events_table_sql,
        examples_sql,
        feature_columns,
        steps_sql,
    )
    from churn_dagster.studies.continuation.sql.examples import HORIZONS_MIN, label_column

    folder = paths.root / "continuation"
    has_value = spec.mapping.value is not None
    with lake.connect() as con:
        types = event_types(con, paths.events)
        con.execute(events_table_sql(paths.events, spec.windows.start, types, spec.mapping.session_id is not None,
                                     has_value, spec.continuation_per_user), {"seed": split_params(split)["seed"]})
        copy_to_parquet(con, examples_sql(types, has_value), folder / "examples.parquet", split_params(split))
        steps = copy_to_parquet(con, steps_sql(types, has_value), folder / "steps.parquet")
        con.execute(f"DROP TABLE {EVENTS_TABLE}")
        frame = con.execute("SELECT * FROM read_parquet($p)", {"p": literal_path(folder / "examples.parquet")}).df()
    columns, logged = feature_columns(types, has_value)
    with atomic_path(folder / "features.json") as tmp:
        tmp.write_text(json.dumps({"columns": columns, "logged": sorted(logged), "types": types,
                                   "value": has_value}, indent=2))
    labels = [label_column(h) for h in HORIZONS_MIN]
    nested = bool((frame[labels[2]] <= frame[labels[1]]).all() and (frame[labels[1]] <= frame[labels[0]]).all())
    capped = int(frame.groupby("user_id").size().max()) if len(frame) else 0
    return dg.MaterializeResult(
        metadata={"dagster/row_count": len(frame), "users": int(frame["user_id"].nunique()), "lstm_steps": steps,
                  "positives": table(["horizon (min)", "examples", "continue", "share"],
                                     [(h, len(frame), int(frame[c].sum()), float(frame[c].mean()) if len(frame) else 0.0)
                                      for h, c in zip(HORIZONS_MIN, labels)]),
                  "preview": frame_table(frame.head(10).round(4))},
        check_results=[check("continuation_examples_valid", nested and capped <= spec.continuation_per_user,
                             f"labels nested: {nested}; most examples of one user: {capped} (cap "
                             f"{spec.continuation_per_user})")])


def model_body(context, spec: EventLogSpec, family: str, params: tuple, mlflow_res, paths: InstancePaths):
    import pandas as pd

    from churn_dagster.studies.continuation.training import train_examples

    mlflow_res.check_reachable()  # before anything else: a transient outage is retried, not half-trained
    folder = paths.root / "continuation"
    examples = pd.read_parquet(folder / "examples.parquet")
    features = json.loads((folder / "features.json").read_text())
    yield from train_examples(
        context, spec.torch_threads, family, params, examples, _fitter(context, spec, family, params, examples, folder,
                                                                       features), folder / "models" / family,
        lambda horizon: f"{spec.name}_continuation_{family}_{horizon}min", spec.windows.start.isoformat(),
        {"task": "continuation", "family": family, "event_log": spec.name}, mlflow_res)


def _fitter(context, spec: EventLogSpec, family: str, params: tuple, examples, folder, features: dict):
    """``fit(horizon)``: the tabular families on the examples' columns, the LSTM on each example's prefix of
    its session's events (``steps.parquet``), its epochs capped by ``max_epochs``."""
    import dataclasses

    import pandas as pd

    from churn_dagster.studies.continuation.ml.data import Prefixes
    from churn_dagster.studies.continuation.ml.models import train_prefix_lstm, train_tabular
    from churn_dagster.studies.continuation.sql.event_logs import prefix_layout
    from churn_dagster.training.ml.train import default_device
    from churn_dagster.training.mlflow_logging import epoch_logger

    if family != "lstm":
        chosen = (features["columns"], frozenset(features["logged"]))
        return lambda horizon: train_tabular(family, examples, horizon, params[0], chosen)
    config, network = params
    if spec.max_epochs is not None:
        config = dataclasses.replace(config, epochs=min(config.epochs, spec.max_epochs))
    prefixes = Prefixes(pd.read_parquet(folder / "steps.parquet"), examples, network.max_steps,
                        prefix_layout(features["types"], features["value"]))
    device = default_device()
    return lambda horizon: train_prefix_lstm(prefixes, horizon, config, network, device, epoch_logger(
        "binary", context.log.info, f"{spec.name}_continuation_lstm_{horizon}min"))
