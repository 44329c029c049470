"""Intent mining: LDA topics over the training users' sessions, and each user's intent profile.

``intent_topics`` fits the intents of a trend partition on the sessions of the first trend period of the
training users of its trend cohorts (the training window of ``partitions.py``) and stores them as ``intents/cohort=<day>/intents.json``,
with the perplexity curve that chose K and the intent-event heatmap. ``intent_profiles`` gives each user of
the cohort the share of their sessions that each intent dominates: what a CRM reads, explained by the heatmap.
"""

import json
from pathlib import Path

import dagster as dg

from churn_dagster.core.constants import OWNERS
from churn_dagster.core.metadata import (
    add_partition_metadata,
    image_markdown,
    schema_metadata,
    table,
)
from churn_dagster.core.resources import LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.storage.duck import atomic_dir, atomic_path, literal_paths
from churn_dagster.storage.lake import Lake, require
from churn_dagster.studies.trends.partitions import TrendPartitions
from churn_dagster.studies.trends.sql.session_events import EVENT_COLUMNS
from churn_dagster.training.config import config_class
from churn_dagster.training.ml.hyperparameters import IntentConfig

IntentTopicsConfig = config_class("IntentTopicsConfig", "LDA intent mining (K range, held-out share, seed).",
                                  IntentConfig())


def intents_folder(lake: Lake, cohort) -> Path:
    return lake.root / "intents" / f"cohort={cohort.isoformat()}"


def _training_sessions(con, lake: Lake, cohorts):
    """The event counts of the training users' sessions of ``cohorts`` (a sessions x events matrix), of the
    first trend period only (``trend_inputs/``)."""
    files = {t: literal_paths(require([area.cohort(t, c) for c in cohorts], "intent_topics"))
             for t, area in (("session_events", lake.trend_inputs()), ("user_splits", lake))}
    return con.execute(
        f"""SELECT {', '.join(f'e.{c}' for c in EVENT_COLUMNS)}
            FROM read_parquet($e, hive_partitioning = false) e
            JOIN read_parquet($s, hive_partitioning = false) s USING (user_id)
            WHERE s.split = 'train' ORDER BY e.user_id, e.global_session_idx""",
        {"e": files["session_events"], "s": files["user_splits"]},
    ).fetchnumpy()


def intent_assets(t: TrendPartitions) -> list[dg.AssetsDefinition]:
    """``intent_topics`` and ``intent_profiles``."""
    p = t.graph
    _TREND_ASSET = dict(group_name="trends", owners=OWNERS, code_version="1", partitions_def=t.partitions)

    @dg.asset(
        description="LDA intents (batch variational LDA, K from 2 to 10 chosen by held-out perplexity) fit on the sessions of "
        "the training users of the partition's trend cohorts; per intent, the weight of each event type. Stored as "
        "intents/cohort=<day>/intents.json with the perplexity curve and the intent-event heatmap.",
        kinds={"numpy", "python"},
        **{**_TREND_ASSET, "code_version": "3"},  # 2: our vectorised LDA; 3: sessions of the first trend period only
        deps=[dg.AssetDep(a, partition_mapping=p.training_window) for a in ("session_events", "user_splits")],
        check_specs=[dg.AssetCheckSpec("topics_are_distributions", asset="intent_topics", blocking=True,
                                       description="Every intent's event weights are finite, non-negative, sum to 1.")],
    )
    def intent_topics(context: dg.AssetExecutionContext, config: IntentTopicsConfig, lake: LakeResource):
        import numpy as np

        from churn_dagster.studies.trends.ml.intents import fit_intents
        from churn_dagster.training.ml import plots

        cohort = parse_day(context.partition_key)
        cohorts = t.training_cohorts(cohort)
        with lake.connect() as con:
            columns = _training_sessions(con, lake.lake, cohorts)
        counts = np.column_stack([columns[c] for c in EVENT_COLUMNS]).astype(np.float64)
        model = fit_intents(counts, EVENT_COLUMNS, IntentConfig(**config.model_dump()))
        context.log.info(f"intent_topics {cohort}: K = {model.k} from {len(counts)} training sessions of {len(cohorts)} cohorts")
        with atomic_dir(intents_folder(lake.lake, cohort)) as out:
            (out / "intents.json").write_text(json.dumps(model.to_dict(), indent=2))
            curve = plots.plot_perplexity_curve(model.perplexity, model.k, out / "perplexity.png")
            heatmap = plots.plot_intent_heatmap(model.topics, model.event_names, out / "intent_heatmap.png")
        folder = intents_folder(lake.lake, cohort)
        sane = bool(np.isfinite(model.topics).all() and (model.topics >= 0).all()
                    and np.allclose(model.topics.sum(axis=1), 1.0))
        return dg.MaterializeResult(
            metadata={
                "k": dg.MetadataValue.int(model.k),
                "training_sessions": dg.MetadataValue.int(len(counts)),
                "cohorts": dg.MetadataValue.text(", ".join(c.isoformat() for c in cohorts)),
                "perplexity": table(["K", "held-out perplexity"], sorted(model.perplexity.items())),
                "top_events": table(["intent", "top event types"], [
                    (k, ", ".join(f"{name} {weight:.2f}" for name, weight in events))
                    for k, events in enumerate(model.top_events(3))]),
                "perplexity_curve": dg.MetadataValue.md(image_markdown(folder / curve.name, "perplexity")),
                "intent_heatmap": dg.MetadataValue.md(image_markdown(folder / heatmap.name, "heatmap")),
                "path": dg.MetadataValue.path(str(folder / "intents.json")),
            },
            check_results=[dg.AssetCheckResult(check_name="topics_are_distributions", passed=sane,
                                               description=f"{model.k} intents over {len(EVENT_COLUMNS)} event types")],
        )


    @dg.asset(
        description="Per user of the cohort: the share of their sessions of the first trend period that each intent dominates "
        "(intent_0 .. intent_{K-1}, summing to 1), the dominant intent and the number of sessions; read it with "
        "intent_topics' heatmap, which says what each intent does. Parquet under cohorts/intent_profiles/.",
        kinds={"python", "parquet"},
        **{**_TREND_ASSET, "code_version": "2"},  # 2: sessions of the first trend period only
        deps=["intent_topics", "session_events"],
        check_specs=[dg.AssetCheckSpec("shares_sum_to_one", asset="intent_profiles",
                                       description="Each user with a session has intent shares summing to 1.")],
    )
    def intent_profiles(context: dg.AssetExecutionContext, lake: LakeResource):
        import numpy as np
        import pandas as pd

        from churn_dagster.studies.trends.ml.intents import (
            IntentModel,
            intent_columns,
            user_intent_profile,
        )

        cohort = parse_day(context.partition_key)
        model = IntentModel.from_dict(json.loads(
            (require([intents_folder(lake.lake, cohort)], "intent_profiles")[0] / "intents.json").read_text()))
        sessions = pd.read_parquet(require([lake.lake.trend_inputs().cohort("session_events", cohort)], "intent_profiles")[0])
        vectors = model.intent_vectors(sessions[list(EVENT_COLUMNS)].to_numpy(np.float64), EVENT_COLUMNS)
        profile = user_intent_profile(sessions["user_id"].to_numpy(), vectors)
        out = lake.lake.cohort("intent_profiles", cohort)
        with atomic_path(out) as tmp:
            profile.to_parquet(tmp, index=False)
        shares = profile[intent_columns(model.k)].sum(axis=1)
        with_sessions = profile["dominant_intent"] >= 0
        bad = int((~np.isclose(shares[with_sessions], 1.0)).sum())
        with lake.connect() as con:
            add_partition_metadata(context, con, {context.partition_key: out}, lambda _key, _path: {
                "users_per_dominant_intent": table(["dominant intent", "users"],
                                                   sorted(profile["dominant_intent"].value_counts().items()))})
            meta = schema_metadata(con, [out])
        return dg.MaterializeResult(metadata=meta, check_results=[dg.AssetCheckResult(
            check_name="shares_sum_to_one", passed=bad == 0,
            description=f"{bad} of {int(with_sessions.sum())} users with sessions have shares not summing to 1")])

    return [intent_topics, intent_profiles]
