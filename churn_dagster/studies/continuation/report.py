"""The continuation report: test ROC-AUC of every model at every horizon, with the counts behind each number,
ROC curves per horizon, written under ``reports/continuation/cohort=<day>/`` and logged to MLflow."""

import json

import dagster as dg
import pandas as pd

from churn_dagster.core.asset_attributes import report_asset
from churn_dagster.core.metadata import (
    check,
    frame_markdown,
    frame_table,
    image_markdown,
)
from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.storage.duck import atomic_dir
from churn_dagster.storage.lake import require
from churn_dagster.studies.continuation.config import (
    CODE_VERSION,
    FAMILIES,
    MIN_CLASS_EXAMPLES,
    asset_name,
)
from churn_dagster.studies.continuation.sql.examples import HORIZONS_MIN

# The Zooniverse study's own numbers would stand beside ours, labelled as theirs, if the source gave them.
PAPER_NOTE = ("The Zooniverse source of this task (seeds/zooniverse_lstm_engagement.md, a translated excerpt of "
              "the author's blog post on his MSc thesis) defines the task (will the working session go on for 10, 20 "
              "or 30 more minutes) and stops before its results, so no published figures are shown beside ours.")
COLUMNS = ["model", "horizon (min)", "test ROC-AUC", "test average precision", "test examples", "test positives",
           "test positive share", "enough of each class", "val ROC-AUC", "train examples", "train positives", "status",
           "registry"]
JUDGED = (f"'enough of each class': at least {MIN_CLASS_EXAMPLES} test examples continue and {MIN_CLASS_EXAMPLES} do "
          "not; an AUC on fewer says little. The test figures are only reported: the registry decides on the "
          "validation users (enough positives and negatives, an AUC above chance by the margin, then the champion "
          "on the same users), and the 'registry' column says what it did and why.")


def _rows(summaries: dict[str, dict]) -> pd.DataFrame:
    rows = []
    for h in HORIZONS_MIN:
        for family, summary in summaries.items():
            r = summary["horizons"].get(str(h))
            if r is None:
                continue
            test = r["test"]
            rows.append([FAMILIES[family][0], h, test["roc_auc"], test["average_precision"], test["examples"],
                         test["positives"], test["positive_rate"],
                         min(test["positives"], test["examples"] - test["positives"]) >= MIN_CLASS_EXAMPLES,
                         r["validation"]["roc_auc"], r["train_examples"],
                         r["train_positives"], r["skipped"] or "trained", r.get("champion_decision") or ""])
    return pd.DataFrame(rows, columns=COLUMNS)


def report_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """``continuation_report``."""

    @dg.asset(
        description="ROC-AUC (and average precision) of the three continuation models at 10, 20 and 30 minutes on the "
        "test users' examples, with examples and positives behind each number and ROC curves per horizon; the "
        "Zooniverse source gives no comparable figures (said in the report). Written to "
        "reports/continuation/cohort=<day>/ and logged to MLflow.",
        **report_asset("continuation", CODE_VERSION, p.cohort_partitions),
        deps=[asset_name(f) for f in FAMILIES],
        check_specs=[dg.AssetCheckSpec(
            "covers_every_model_and_horizon", asset="continuation_report",
            description="The table holds every model at every horizon (trained, or with why not) and every figure the "
            "report embeds was written.")],
    )
    def continuation_report(context: dg.AssetExecutionContext, lake: LakeResource, mlflow: MlflowResource):
        import mlflow as mlflow_api  # the model code is imported when the report runs, not when definitions load

        from churn_dagster.training.ml import plots

        cohort = parse_day(context.partition_key)
        summaries = {f: json.loads((require([lake.lake.model(asset_name(f), cohort)], "continuation_report")[0]
                                    / "metrics.json").read_text()) for f in FAMILIES}
        predictions = {f: pd.read_parquet(lake.lake.model(asset_name(f), cohort) / "test_predictions.parquet")
                       for f in FAMILIES if summaries[f]["horizons"]}
        frame = _rows(summaries)
        folder = lake.lake.root / "reports" / "continuation" / f"cohort={cohort.isoformat()}"
        with atomic_dir(folder) as out:
            figures = {}
            for h in HORIZONS_MIN:
                curves = {FAMILIES[f][0]: (p.loc[p.horizon_min == h, "y"].to_numpy() == 1, p.loc[p.horizon_min == h, "p"])
                          for f, p in predictions.items()}
                curves = {k: v for k, v in curves.items() if 0 < v[0].sum() < len(v[0])}
                if curves:
                    figures[h] = plots.plot_roc_comparison(curves, out / f"roc_{h}min.png", f"Continues {h}+ min: ROC (test)")
            frame.to_csv(out / "auc.csv", index=False)
            cohorts = next((s["cohorts"] for s in summaries.values() if s["cohorts"]), [])
            body = "\n\n".join([
                "# Session continuation",
                (f"At a feed request: does the session go on for at least 10, 20, 30 more minutes? Trained on the "
                f"continuation examples of the cohorts {', '.join(cohorts) or '(none)'}, test users' examples scored."),
                frame_markdown(frame) if len(frame) else "No continuation example in the training window: nothing trained.",
                JUDGED,
                PAPER_NOTE,
            ])
            (out / "report.md").write_text(body + "\n")
            with mlflow.start_run(context, f"continuation_report {cohort}",
                                  {"kind": "report", "task": "continuation", "partition": cohort.isoformat()}) as run:
                mlflow_api.log_artifacts(str(out), artifact_path="report")
                mlflow_api.log_metrics({f"{row['model'].split()[0].lower()}_{row['horizon (min)']}min_test_auc":
                                        row["test ROC-AUC"] for _, row in frame.iterrows()})
                url = mlflow.run_url(run.info.run_id)
        expected = {(FAMILIES[f][0], h) for f in FAMILIES for h in HORIZONS_MIN if summaries[f]["horizons"]}
        listed = set(zip(frame["model"], frame["horizon (min)"], strict=True))
        missing = [h for h, path in figures.items() if not (folder / path.name).exists()]
        complete = check("covers_every_model_and_horizon", listed == expected and not missing,
                         f"{len(listed)} of {len(expected)} (model, horizon) rows; figures missing: {missing or 'none'}")
        return dg.MaterializeResult(check_results=[complete], metadata={
            "auc_by_model_and_horizon": frame_table(frame),
            "paper": dg.MetadataValue.text(PAPER_NOTE),
            "figures": dg.MetadataValue.md("\n\n".join(image_markdown(folder / p.name, f"{h} min") for h, p in figures.items())),
            "report": dg.MetadataValue.path(str(folder / "report.md")),
            "mlflow_run": dg.MetadataValue.url(url),
        })

    return [continuation_report]
