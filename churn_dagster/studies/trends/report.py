"""The trend part of the evaluation report: the fourteen trend models of a partition, mean ± std over their
seeds, beside the DIGMN paper's LinkedIn results.

The churn ``evaluation_report`` is partitioned by cohort and the trend models by trend cohort, so the trend
results are a report asset of their own in the same ``reports`` group rather than a section of it: the
lineage then runs sessions -> session events -> intents -> trend models -> this report, and neither report
waits for the other's models.
"""

import json

import dagster as dg
import pandas as pd

from churn_dagster.core.asset_attributes import report_asset
from churn_dagster.core.metadata import check, frame_markdown, frame_table
from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.core.resources import LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.storage.duck import atomic_dir
from churn_dagster.storage.lake import require
from churn_dagster.studies.trends.config import (
    MODEL_LABELS,
    TREND_CODE_VERSION,
    TREND_MODEL_NAMES,
    TREND_TASKS,
    trend_model_name,
)
from churn_dagster.studies.trends.ml.hyperparameters import TREND_MODELS
from churn_dagster.studies.trends.partitions import TrendPartitions


def trend_report_assets(t: TrendPartitions) -> list[dg.AssetsDefinition]:
    """``trend_report``."""

    @dg.asset(
        description="The DIGMN comparison of a trend partition: each of the 14 trend models (7 models x the day- and "
        "session-level tasks), test macro F1 / AUROC as mean ± std over its seeds, beside the paper's LinkedIn results "
        "(Table 3; Table 4 for the static ablation). The trend results of the evaluation report, written to "
        "reports/trends/cohort=<day>/ and logged to MLflow.",
        **report_asset("reports", TREND_CODE_VERSION, t.partitions),
        deps=TREND_MODEL_NAMES,
        check_specs=[dg.AssetCheckSpec(
            "covers_every_model", asset="trend_report",
            description="Every model has a finite mean and std on both tasks.")],
    )
    def trend_report(context: dg.AssetExecutionContext, lake: LakeResource, mlflow: MlflowResource) -> dg.MaterializeResult:
        import mlflow as mlflow_api  # MLflow loads when the report runs, not when definitions load

        from churn_dagster.studies.trends.ml.report import comparison_table, display_table

        cohort = parse_day(context.partition_key)
        files = {(m, t): json.loads((require([lake.lake.model(trend_model_name(m, t), cohort)], "trend_report")[0]
                                     / "summary.json").read_text())
                 for m in TREND_MODELS for t in TREND_TASKS}
        table = comparison_table({k: f["summary"] for k, f in files.items()},
                                 {m: label for m, (label, _) in MODEL_LABELS.items()})
        shown = display_table(table)
        decisions = pd.DataFrame(
            [{"model": MODEL_LABELS[m][0], "task": t, "registered version": f.get("registered_version") or "not registered",
              "decision": f.get("champion_decision", "")} for (m, t), f in files.items()],
            columns=["model", "task", "registered version", "decision"])
        users = files[(TREND_MODELS[0], TREND_TASKS[0])]["users"]
        cohorts = files[(TREND_MODELS[0], TREND_TASKS[0])]["cohorts"]
        text = "\n\n".join([
            f"# Trend tasks (DIGMN), trend partition {cohort}",
            (f"Test metrics over the seeds of each model (mean ± std), trained on the trend cohorts "
             f"{', '.join(cohorts)}: {users['train']} training, {users['validation']} validation and {users['test']} test "
             "users. The paper's columns are its results on LinkedIn users (Li, Du, Fu et al., WSDM 2023), not on this data: "
             "for orientation only."),
            frame_markdown(shown),
            "## Registry decisions",
            ("The seed kept is the one with the best validation metric; it is registered only with enough validation "
             "users of its judged classes and a validation metric above chance by the margin, and promoted only if it "
             "beats the champion on the same validation users (each scored with its own topic model). Test figures "
             "are reported, never used for a decision."),
            frame_markdown(decisions),
        ])
        folder = lake.lake.root / "reports" / "trends" / f"cohort={cohort.isoformat()}"
        with atomic_dir(folder) as out:
            (out / "report.md").write_text(text + "\n")
            table.to_csv(out / "comparison.csv", index=False)
            (out / "report.json").write_text(json.dumps(
                {"cohorts": cohorts, "users": users, "rows": table.to_dict("records"),
                 "models": {trend_model_name(m, t): f for (m, t), f in files.items()}}, indent=2, default=float))
            tags = {"kind": "report", "partition": cohort.isoformat()}
            with mlflow.start_run(context, f"trend_report {cohort}", tags) as run:
                mlflow_api.log_artifacts(str(out), artifact_path="report")
                mlflow_api.log_metrics({f"{trend_model_name(m, t)}_test_mean": f["summary"]["test_mean"]
                                        for (m, t), f in files.items()})
                url = mlflow.run_url(run.info.run_id)
        ours = table[[c for c in table.columns if c.endswith("(ours)")]]
        complete = check("covers_every_model", len(table) == len(TREND_MODELS) and bool(ours.notna().all().all()),
                         f"{len(table)} of {len(TREND_MODELS)} models; cells without a finite value: "
                         f"{int(ours.isna().sum().sum())}")
        return dg.MaterializeResult(check_results=[complete], metadata={
            "comparison": frame_table(table),
            "registry_decisions": frame_table(decisions),
            "report": dg.MetadataValue.md(text),
            "path": dg.MetadataValue.path(str(folder / "report.md")),
            "mlflow_run": dg.MetadataValue.url(url),
        })

    return [trend_report]
