"""``case_study_report``: our four models in both variants beside the case study's own figures, labelled."""

import json

import dagster as dg
import pandas as pd

from churn_dagster.core.constants import OWNERS
from churn_dagster.core.metadata import check, frame_markdown, frame_table
from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import LakeResource
from churn_dagster.storage.duck import atomic_dir
from churn_dagster.storage.lake import require
from churn_dagster.studies.case_study.data import windows
from churn_dagster.studies.case_study.ml import report
from churn_dagster.studies.case_study.models import CODE_VERSION, FAMILIES
from churn_dagster.studies.case_study.names import asset_name, model_folder
from churn_dagster.studies.case_study.sql.data import labels_path, threshold_path

INTRO = (
    "Our models on this data (rows 'ours') beside the figures the case study reported on the real NCM log (rows "
    "'theirs', from the notebook its post links). Theirs are not comparable with ours: their actives were upsampled "
    "before the train/test split (duplicates of training users in the test set, 59% active), the target period's "
    "impression count was one of their inputs, and users without a target-period impression were dropped. They "
    "published no ROC-AUC (–) and no naive Bayes or decision-tree results; their logistic regression and "
    "random forest are listed for completeness. Synthetic data cannot reproduce real figures either."
)


def report_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """``case_study_report``."""
    WINDOWS = windows(p)

    @dg.asset(
        description="The case study's results table: accuracy, precision/recall/F1 of the active class and ROC-AUC of "
        "the four models without and with upsampling, beside the case study's reported figures (labelled as theirs), "
        "and the target definition side by side. Written to case_study/report/ and logged to MLflow.",
        group_name="case_study",
        kinds={"python", "mlflow"},
        owners=OWNERS,
        code_version=CODE_VERSION,
        deps=[asset_name(f) for f in FAMILIES] + ["case_study_labels"],
        check_specs=[dg.AssetCheckSpec(
            "covers_every_model", asset="case_study_report",
            description="Every family appears with both variants (or says why it trained nothing), beside theirs.")],
    )
    def case_study_report(context: dg.AssetExecutionContext, lake: LakeResource,
                          mlflow: MlflowResource) -> dg.MaterializeResult:
        import mlflow as mlflow_api  # loaded when the report runs, not when definitions load

        root = lake.lake
        metrics = {f: json.loads((require([model_folder(root, f)], "case_study_report")[0] / "metrics.json").read_text())
                   for f in FAMILIES}
        threshold = json.loads(require([threshold_path(root)], "case_study_report")[0].read_text())
        labels = pd.read_parquet(labels_path(root), columns=["split", "active", "target_ctr"])
        comparison = report.comparison_table(metrics)
        population = report.population_table(threshold, labels)
        decisions = report.decisions_table(metrics)
        folder = root.root / "case_study" / "report"
        with atomic_dir(folder) as out:
            comparison.to_csv(out / "comparison.csv", index=False)
            population.to_csv(out / "target_definition.csv", index=False)
            body = "\n\n".join([
                "# Case study: active users (NCM 2021)",
                f"Features from days 1-{WINDOWS.feature_days}; active = CTR over days {WINDOWS.target_dts[0]}-"
                f"{WINDOWS.target_dts[-1]} above the training users' mean. Test users of the project's user split.",
                INTRO, "## Target definition", frame_markdown(population), "## Results (test users)",
                frame_markdown(comparison.round(4).astype(object).where(comparison.notna(), "–")),
                "## Registry decisions",
                "A variant is registered only with enough validation actives and inactives and a validation AUC above "
                "chance by the margin, and promoted only if it beats the champion on the same validation users; the "
                "test figures are reported, never used for a decision.",
                frame_markdown(decisions),
            ])
            (out / "report.md").write_text(body + "\n")
            with mlflow.start_run(context, "case_study_report", {"study": "case_study", "kind": "report"}) as run:
                mlflow_api.log_artifacts(str(out), artifact_path="report")
                url = mlflow.run_url(run.info.run_id)
        ours = comparison[comparison["whose"] == report.OURS]
        expected = {(report.FAMILY_LABELS[f], report.VARIANT_LABELS[v])
                    for f, m in metrics.items() for v in m.get("variants", {})}
        listed = set(zip(ours["model"], ours["variant"], strict=True))
        untrained = [f for f, m in metrics.items() if not m.get("variants")]
        theirs_beside = (comparison["whose"] == report.THEIRS).any()
        complete = expected <= listed and len(ours) == len(expected) + len(untrained) and theirs_beside
        return dg.MaterializeResult(
            metadata={
                "results": frame_table(comparison), "target_definition": frame_table(population),
                "registry_decisions": frame_table(decisions),
                "report": dg.MetadataValue.md(body), "path": dg.MetadataValue.path(str(folder / "report.md")),
                "mlflow_run": dg.MetadataValue.url(url),
            },
            check_results=[check("covers_every_model", complete,
                                 f"{len(listed)} of our (model, variant) rows for {len(expected)} trained variants; "
                                 f"untrained families: {untrained or 'none'}; the case study's rows beside them")],
        )

    return [case_study_report]
