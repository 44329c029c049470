"""The evaluation report: every model for both targets and both protocols, the reference study beside it,
comparison figures, and explanations (feature importance, SHAP, attention over sessions)."""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from churn_dagster.core.asset_attributes import report_asset
from churn_dagster.core.constants import TARGETS
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
from churn_dagster.storage.lake import Lake, read_cohort_tables, require
from churn_dagster.studies.churn.config import FAMILIES, MODEL_CODE_VERSION, model_name

ATTENTION_SAMPLE = 24
SHAP_ROWS = 2000


def _read_models(lake: Lake, cohort) -> tuple[dict, dict]:
    metrics, predictions = {t: {} for t in TARGETS}, {t: {} for t in TARGETS}
    for target in TARGETS:
        for family in FAMILIES:
            folder = require([lake.model(model_name(family, target), cohort)], "evaluation_report")[0]
            metrics[target][family] = json.loads((folder / "metrics.json").read_text())
            predictions[target][family] = pd.read_parquet(folder / "test_predictions.parquet")
    return metrics, predictions


def _explanations(lake: Lake, mlflow: MlflowResource, metrics: dict, cohorts, out: Path) -> tuple[str, dict]:
    """SHAP for XGBoost, standardised coefficients for the logistic regression, attention for the hybrid,
    all for the churn target on random-split test users, with the versions the model assets registered (a
    model that was not registered is not explained, and the report says so)."""
    from churn_dagster.stages.tensors.ml.data import SequenceDataset
    from churn_dagster.studies.churn.ml import explain
    from churn_dagster.studies.churn.ml.report import FAMILY_LABELS
    from churn_dagster.training.ml import classical
    from churn_dagster.training.registry import load_version

    kpi = read_cohort_tables(lake, "kpi_features", cohorts)
    labels = read_cohort_tables(lake, "label_scores", cohorts)
    design = classical.kpi_design(kpi, labels)
    test_rows = design.X[design.rows("test")]
    version = {f: metrics["binary"][f]["registered_version"] for f in FAMILIES}
    loaded = {f: load_version(mlflow, model_name(f, "binary"), f, v).candidate for f, v in version.items()
              if v is not None and f in ("xgboost", "logreg", "hybrid_lstm")}
    parts, figures = ["## Explanations (churn target, random-split test users)"], {}
    if "xgboost" in loaded:
        xgb = loaded["xgboost"]
        shap = explain.xgboost_shap(xgb.model, test_rows[list(xgb.model.feature_names_in_)], max_rows=SHAP_ROWS)
        figures["shap_xgboost"] = explain.plot_shap_importance(shap, out / "shap_xgboost_churn.png")
        parts.append("XGBoost, mean |SHAP| (top 10):\n\n" + frame_markdown(shap.top(10).rename_axis("feature").reset_index()))
    if "logreg" in loaded:
        logreg = loaded["logreg"]
        coefs = explain.logistic_coefficients(logreg.model, list(logreg.model.feature_names_in_))
        figures["coefficients_logreg"] = explain.plot_coefficients(coefs, out / "coefficients_logreg_churn.png")
        parts.append("Logistic regression, standardised coefficients (top 10):\n\n"
                     + frame_markdown(coefs.head(10).rename_axis("feature").reset_index()))
    if "hybrid_lstm" in loaded:
        hybrid = loaded["hybrid_lstm"]
        dataset = SequenceDataset([lake.tensors(c) for c in cohorts], "binary", split="test",
                                  normalization=hybrid.normalization)
        rng = np.random.default_rng(0)
        longest = np.argsort(-dataset.lengths, kind="stable")[: 4 * ATTENTION_SAMPLE]
        shown = min(ATTENTION_SAMPLE, len(longest))
        sample = explain.attention_weights(hybrid.model, dataset, np.sort(rng.choice(longest, shown, replace=False)))
        figures["attention_hybrid"] = explain.plot_attention(sample, out / "attention_hybrid_churn.png")
        recent = float(np.mean([w[length - 1] for w, length in zip(sample.weights, sample.lengths, strict=True)]))
        parts.append(f"Hybrid LSTM attention over the sessions of {shown} users with the longest histories: the most "
                     f"recent session gets {recent:.1%} of the weight on average (uniform would be "
                     f"{np.mean(1 / sample.lengths):.1%}).")
    unexplained = [FAMILY_LABELS[f] for f in ("xgboost", "logreg", "hybrid_lstm") if f not in loaded]
    if unexplained:
        parts.append(f"Not explained, because not registered (see the registry decisions): {', '.join(unexplained)}.")
    return "\n\n".join(parts), figures


def report_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """``evaluation_report``."""

    @dg.asset(
        description="Comparison of the 8 models of a training partition (both targets, random and out-of-time "
        "splits) with the SPEC's evaluation columns, the reference study's figures beside ours, ROC/F1/confusion "
        "figures, SHAP, coefficients and attention weights. Written to reports/evaluation/cohort=<day>/ and logged "
        "to MLflow.",
        **report_asset("reports", MODEL_CODE_VERSION, p.cohort_partitions),
        deps=[model_name(f, t) for f in FAMILIES for t in TARGETS] + [
            dg.AssetDep(a, partition_mapping=p.training_window) for a in ("kpi_features", "label_scores", "sequence_tensors")],
        check_specs=[dg.AssetCheckSpec(
            "covers_every_model", asset="evaluation_report",
            description="Both comparison tables hold every family under every protocol its models trained, and every "
            "figure the report embeds was written.")],
    )
    def evaluation_report(context: dg.AssetExecutionContext, lake: LakeResource, mlflow: MlflowResource) -> dg.MaterializeResult:
        import mlflow as mlflow_api  # the model code is imported when the report runs, not when definitions load

        from churn_dagster.studies.churn.ml import report

        cohort = parse_day(context.partition_key)
        metrics, predictions = _read_models(lake.lake, cohort)
        headline = report.headline_table(metrics)
        tables = {t: report.comparison_table(metrics[t], t) for t in TARGETS}
        decisions = report.decisions_table(metrics)
        trained_on = [parse_day(c) for c in metrics["binary"]["xgboost"]["cohorts"]]
        folder = lake.lake.root / "reports" / "evaluation" / f"cohort={cohort.isoformat()}"
        with atomic_dir(folder) as out:
            figures = report.comparison_figures(predictions, metrics, out)
            explanation, more = _explanations(lake.lake, mlflow, metrics, trained_on, out)
            figures.update(more)
            for target, table in tables.items():
                table.to_csv(out / f"comparison_{target}.csv", index=False)
            body = "\n\n".join([
                "# Evaluation report",
                "Test-set metrics of our models on this data, beside the reference study (Guo 2025) on the real NCM "
                "data. Synthetic data cannot reproduce the reference; the reference columns are for orientation only.",
                frame_markdown(headline),
                "## Binary churn, every metric",
                frame_markdown(tables["binary"]),
                "## Five-level engagement, every metric",
                frame_markdown(tables["level"]),
                "## Registry decisions",
                "A model is registered only with enough validation positives and negatives and a validation AUC above "
                "chance by the margin, and promoted only if it beats the champion on the same validation users; the "
                "test figures above are reported, never used for a decision.",
                frame_markdown(decisions),
                explanation,
            ])
            (out / "report.md").write_text(body + "\n")
            with mlflow.start_run(context, f"evaluation_report {cohort}", {"kind": "report", "partition": cohort.isoformat()}) as run:
                mlflow_api.log_artifacts(str(out), artifact_path="report")
                for _, row in headline.iterrows():
                    key = row["model"].lower().replace(" ", "_")
                    mlflow_api.log_metrics({f"{key}_binary_auc": row["binary AUC"], f"{key}_level_auc": row["5-class OvR AUC"]})
                url = mlflow.run_url(run.info.run_id)
        shown = [k for k in ("roc_binary_random", "roc_binary_out_of_time", "roc_level_random", "f1_level",
                             "attention_hybrid") if k in figures]
        expected = {(report.FAMILY_LABELS[f], report.SCHEME_LABELS[scheme]) for f in FAMILIES for scheme in metrics["binary"][f]["schemes"]}
        listed = {t: set(zip(table["model"], table["split"], strict=True)) for t, table in tables.items()}
        missing_figures = [k for k, path in figures.items() if not (folder / path.name).exists()]
        complete = check("covers_every_model", all(rows == expected for rows in listed.values()) and not missing_figures,
                         f"{len(expected)} (model, protocol) rows expected; binary table {len(listed['binary'])}, "
                         f"level table {len(listed['level'])}; figures missing: {missing_figures or 'none'}")
        return dg.MaterializeResult(check_results=[complete], metadata={
            "models_vs_reference": frame_table(headline),
            "binary_churn": frame_table(tables["binary"]),
            "five_levels": frame_table(tables["level"]),
            "registry_decisions": frame_table(decisions),
            "explanations": dg.MetadataValue.md(explanation),
            "figures": dg.MetadataValue.md("\n\n".join(image_markdown(folder / figures[k].name, k) for k in shown)),
            "report": dg.MetadataValue.path(str(folder / "report.md")),
            "mlflow_run": dg.MetadataValue.url(url),
        })

    return [evaluation_report]
