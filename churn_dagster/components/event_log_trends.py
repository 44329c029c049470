"""The engagement trends (DIGMN) on an event log (``studies: [..., trends]``; docs/EVENT_LOGS.md, "Engagement
trends"): ``<name>/trend_data``, ``<name>/trend_intents``, the NCM study's seven models for both tasks,
``<name>/trend_<model>_<day|session>``, and ``<name>/trend_report``, under the instance's key prefix and group.

The wiring is here; the bodies (imported when a step runs) call the study: ``studies/trends/event_log_tables.py``
for the tables, ``studies/trends/ml/intents.fit_intents`` for the intents and
``studies/trends/training.train_trend_models`` for the models, the NCM trend assets' own training.
"""


import dataclasses
import json

import dagster as dg

from churn_dagster.components.event_log_spec import EventLogSpec, InstancePaths
from churn_dagster.components.event_log_training import study_model_asset
from churn_dagster.core.metadata import check, frame_markdown, frame_table, image_markdown, table
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.errors import UserError
from churn_dagster.studies.trends.config import CONFIG_CLASSES, MODEL_LABELS, TASK_LABELS, TREND_TASKS
from churn_dagster.studies.trends.intents import IntentTopicsConfig
from churn_dagster.studies.trends.ml.hyperparameters import TREND_MODELS

# Fewer first-period sessions of training users than this cannot be split for LDA's held-out perplexity.
MIN_INTENT_SESSIONS = 20


def trend_folders(paths: InstancePaths) -> dict:
    root = paths.root / "trends"
    return {"data": root / "data", "intents": root / "intents", "models": root / "models", "report": root / "report"}


def trend_assets(spec: EventLogSpec, key, common: dict, upstream: list[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """The trend study's assets of ``spec`` (``key``: the instance's key maker; ``upstream``: the events and,
    where there is one, the users table)."""
    w = spec.trends

    @dg.asset(key=key("trend_data"), deps=upstream, kinds={"duckdb", "parquet"}, **common,
              description=f"Trends: per new user whose first {w.first_days} days and the "
                          f"{w.second_days} after lie in the log, whether active days and sessions per day "
                          "fall, hold or rise, the median filter and the split; and the inputs, from the first "
                          "period only: static features, per-session and per-day event-type counts.",
              check_specs=[dg.AssetCheckSpec("trend_data_valid", asset=key("trend_data"), blocking=True,
                                             description="one label per user, classes in range, inputs inside the "
                                                         "first period, one row per user and first-period day")])
    def data(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        return data_body(context, spec, lake, features.split, InstancePaths(lake.data_dir, spec.name))

    @dg.asset(key=key("trend_intents"), deps=[key("trend_data")], kinds={"numpy", "python"}, **common,
              description="Trends: LDA intents (K by held-out perplexity) over the first-period sessions of the "
                          "training users, each a bag of the log's event types; the intent-event heatmap.",
              check_specs=[dg.AssetCheckSpec("topics_are_distributions", asset=key("trend_intents"), blocking=True,
                                             description="every intent's event weights are finite, >= 0, sum to 1")])
    def intents(context: dg.AssetExecutionContext, config: IntentTopicsConfig, lake: LakeResource):
        return intents_body(context, spec, config, InstancePaths(lake.data_dir, spec.name))

    def model(name: str, task: str) -> dg.AssetsDefinition:
        return study_model_asset(
            key(f"trend_{name}_{task}"), [key("trend_data"), key("trend_intents")], MODEL_LABELS[name][1],
            f"Trends: {MODEL_LABELS[name][0]} on {TASK_LABELS[task]}, once per seed, the seed chosen on "
            "validation registered under the evidence and champion rules.", CONFIG_CLASSES[name],
            lambda context, config, lake, mlflow: model_body(context, spec, name, task, config, mlflow,
                                                             InstancePaths(lake.data_dir, spec.name)),
            common, warnings={"beats_chance": "the kept seed beats chance on enough validation users"})

    models = [model(m, t) for m in TREND_MODELS for t in TREND_TASKS]

    @dg.asset(key=key("trend_report"), deps=[m.key for m in models], kinds={"python"}, **common,
              description="Trends: every model's test macro F1 (day) and AUROC (session), mean ± std over its "
                          "seeds, beside the DIGMN paper's LinkedIn figures; and whether DIGMN beats its static "
                          "ablation and the multi-channel model the MLP.",
              check_specs=[dg.AssetCheckSpec("covers_every_model", asset=key("trend_report"),
                                             description="every model has a test figure on both tasks")])
    def report(context: dg.AssetExecutionContext, lake: LakeResource):
        return report_body(InstancePaths(lake.data_dir, spec.name))

    return [data, intents, *models, report]


def data_body(context, spec: EventLogSpec, lake, split, paths: InstancePaths) -> dg.MaterializeResult:
    import pandas as pd

    from churn_dagster.components.event_log_bodies import log_last_day
    from churn_dagster.studies.trends.event_log_tables import build_trend_tables
    from churn_dagster.studies.trends.sql.trends import DAY_TREND_CLASSES

    w, folder = spec.trends, trend_folders(paths)["data"]
    users = dict(users=paths.users, attributes=spec.users[1].attributes) if spec.users else {}
    with lake.connect() as con:
        last = log_last_day(con, spec, paths)
        built = build_trend_tables(con, paths.events, w, spec.mapping, last, split, folder, **users)
    if not built.kept:
        raise UserError(f"{spec.where}: trends: no new user from {w.start} has {w.first_days} + "
                        f"{w.second_days} days inside the log (last day {last}); shorten "
                        "trends.first_period_days or trends.second_period_days")
    context.log.info(f"trend_data: {built.users} users ({built.kept} kept by the median filter), {built.sessions} "
                     f"first-period sessions, {len(built.event_columns)} event columns")
    labels = pd.read_parquet(folder / "users.parquet")
    daily = pd.read_parquet(folder / "daily.parquet", columns=["user_id", "day_num"])
    sessions = pd.read_parquet(folder / "sessions.parquet", columns=["user_id", "day_num"])
    kept = labels[labels["kept_by_filter"]]
    one_each = labels["user_id"].is_unique
    classes = bool(labels["day_trend"].isin([0, 1, 2]).all() and labels["session_trend"].isin([0, 1]).all())
    inside = bool(sessions["day_num"].between(1, w.first_days).all()
                  and sessions["user_id"].isin(labels["user_id"]).all())
    grid = len(daily) == len(labels) * w.first_days and daily.groupby("user_id").size().eq(
        w.first_days).all()
    shares = kept.groupby("split")["day_trend"].value_counts(normalize=True).unstack(fill_value=0.0)
    return dg.MaterializeResult(
        metadata={"dagster/row_count": built.users, "kept_by_filter": built.kept, "sessions": built.sessions,
                  "cohorts": len(built.cohorts), "log_last_day": last.isoformat(),
                  "event_columns": dg.MetadataValue.text(", ".join(built.event_columns)),
                  "day_trend_shares": table(["split", *DAY_TREND_CLASSES], [
                      (s, *(float(shares.loc[s].get(k, 0.0)) for k in range(3))) for s in shares.index]),
                  "session_decrease_share": float(kept["session_trend"].mean()),
                  "preview": frame_table(labels.head(10))},
        check_results=[check("trend_data_valid", one_each and classes and inside and bool(grid), "; ".join([
            f"one row per user: {one_each}", f"classes in range: {classes}",
            f"sessions inside the first {w.first_days} days and of known users: {inside}",
            f"one row per user and first-period day: {bool(grid)}"]))])


def intents_body(context, spec: EventLogSpec, config, paths: InstancePaths) -> dg.MaterializeResult:
    import numpy as np
    import pandas as pd

    from churn_dagster.storage.duck import atomic_dir
    from churn_dagster.studies.trends.event_log_tables import read_columns
    from churn_dagster.studies.trends.ml.intents import fit_intents
    from churn_dagster.training.ml import plots
    from churn_dagster.training.ml.hyperparameters import IntentConfig

    folders = trend_folders(paths)
    columns = read_columns(folders["data"])["event_columns"]
    users = pd.read_parquet(folders["data"] / "users.parquet", columns=["user_id", "split"])
    sessions = pd.read_parquet(folders["data"] / "sessions.parquet", columns=["user_id", *columns])
    train = sessions["user_id"].isin(users.loc[users["split"] == "train", "user_id"])
    counts = sessions.loc[train, columns].to_numpy(np.float64)
    if len(counts) < MIN_INTENT_SESSIONS:
        raise UserError(f"{spec.where}: trends: {len(counts)} first-period sessions of training users, too few to "
                        f"mine intents (at least {MIN_INTENT_SESSIONS}); a longer log or more users")
    model = fit_intents(counts, columns, IntentConfig(**config.model_dump()))
    context.log.info(f"trend_intents: K = {model.k} from {len(counts)} training sessions")
    with atomic_dir(folders["intents"]) as out:
        (out / "intents.json").write_text(json.dumps(model.to_dict(), indent=2))
        curve = plots.plot_perplexity_curve(model.perplexity, model.k, out / "perplexity.png")
        heatmap = plots.plot_intent_heatmap(model.topics, model.event_names, out / "intent_heatmap.png")
    sane = bool(np.isfinite(model.topics).all() and (model.topics >= 0).all()
                and np.allclose(model.topics.sum(axis=1), 1.0))
    return dg.MaterializeResult(
        metadata={"k": model.k, "training_sessions": len(counts),
                  "perplexity": table(["K", "held-out perplexity"], sorted(model.perplexity.items())),
                  "top_events": table(["intent", "top event types"], [
                      (k, ", ".join(f"{n} {v:.2f}" for n, v in events)) for k, events in enumerate(model.top_events(3))]),
                  "perplexity_curve": dg.MetadataValue.md(image_markdown(folders["intents"] / curve.name, "perplexity")),
                  "intent_heatmap": dg.MetadataValue.md(image_markdown(folders["intents"] / heatmap.name, "heatmap"))},
        check_results=[check("topics_are_distributions", sane, f"{model.k} intents over {len(columns)} event types")])


def model_body(context, spec: EventLogSpec, name: str, task: str, config, mlflow_res, paths: InstancePaths):
    from churn_dagster.studies.trends.config import trend_hyperparameters
    from churn_dagster.studies.trends.ml.data import load_event_log_trend_data
    from churn_dagster.studies.trends.ml.intents import IntentModel
    from churn_dagster.studies.trends.training import train_trend_models
    from churn_dagster.training.ml.hyperparameters import TrainConfig

    mlflow_res.check_reachable()  # before anything else: a transient outage is retried, not half-trained
    folders = trend_folders(paths)
    intents = IntentModel.from_dict(json.loads((folders["intents"] / "intents.json").read_text()))
    data = load_event_log_trend_data(folders["data"], intents)
    users = {split: int(data.rows(split).sum()) for split in ("train", "validation", "test")}
    if not all(users.values()):
        raise UserError(f"{spec.where}: trends: the users in the task by split are {users}; every split needs "
                        "users to train, select and report on (a longer log, more users, or median_filter: false)")
    params = trend_hyperparameters(name, config)
    if spec.max_epochs is not None:
        params = tuple(dataclasses.replace(p, epochs=min(p.epochs, spec.max_epochs)) if isinstance(p, TrainConfig)
                       else p for p in params)
    cohorts = sorted({c.isoformat() for c in data.users["cohort_day"]})
    yield from train_trend_models(context, spec.torch_threads, name, task, data, intents, params,
                                  folders["models"] / f"{name}_{task}", f"{spec.name}_trend_{name}_{task}", cohorts,
                                  {"event_log": spec.name, "study": "trends"}, mlflow_res)


def report_body(paths: InstancePaths) -> dg.MaterializeResult:
    import math

    from churn_dagster.storage.duck import atomic_dir
    from churn_dagster.studies.trends.ml.report import TASK_COLUMNS, comparison_table, display_table

    folders = trend_folders(paths)
    summaries = {}
    for m in TREND_MODELS:
        for t in TREND_TASKS:
            found = folders["models"] / f"{m}_{t}" / "summary.json"
            if found.exists():
                summaries[(m, t)] = json.loads(found.read_text())["summary"]
    comparison = comparison_table(summaries, {m: label for m, (label, _) in MODEL_LABELS.items()})
    shown = display_table(comparison)
    gaps = []
    for better, worse in (("digmn", "digmn_static"), ("multichannel", "mlp")):
        for t in TREND_TASKS:
            a, b = summaries.get((better, t)), summaries.get((worse, t))
            if a and b:
                gap, spread = a["test_mean"] - b["test_mean"], math.hypot(a["test_std"], b["test_std"])
                gaps.append((MODEL_LABELS[better][0], MODEL_LABELS[worse][0], TASK_COLUMNS[t], round(gap, 4),
                             round(spread, 4), bool(gap > 2 * spread)))
    with atomic_dir(folders["report"]) as out:
        comparison.to_csv(out / "trend_comparison.csv", index=False)
        (out / "report.md").write_text("# Engagement trends\n\n" + frame_markdown(shown) + "\n")
    missing = [f"{m} {t}" for m in TREND_MODELS for t in TREND_TASKS if (m, t) not in summaries]
    return dg.MaterializeResult(
        metadata={"comparison": frame_table(shown),
                  "gaps": table(["model", "over", "metric", "gap", "std of the gap", "beyond 2 std"], gaps),
                  "path": dg.MetadataValue.path(str(folders["report"] / "report.md"))},
        check_results=[check("covers_every_model", not missing,
                             "every model on both tasks" if not missing else f"missing: {', '.join(missing)}")])
