"""The bodies of an event-log instance's assets: each calls the stage or the study and turns what it
returns into metadata and check results. Imported when a step runs, not when the code location loads."""

from __future__ import annotations

import json
from datetime import date

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from churn_dagster.components.event_log_spec import EventLogSpec, InstancePaths
from churn_dagster.core.metadata import check, frame_table, query_table, table
from churn_dagster.errors import UserError
from churn_dagster.stages.events.build import build_cohorts
from churn_dagster.stages.events.load import load_events
from churn_dagster.storage.duck import atomic_path, literal_path, parquet_rows


def load_events_body(context, spec: EventLogSpec, lake, paths: InstancePaths) -> dg.MaterializeResult:
    with lake.connect() as con:
        summary = load_events(con, spec.source, spec.mapping, paths.events, paths.quarantine, context.log.info)
        loaded, quarantined = parquet_rows(con, [paths.events]), parquet_rows(con, [paths.quarantine])
        preview = query_table(con, f"SELECT * FROM read_parquet('{literal_path(paths.events)}') LIMIT 10")
    share = quarantined / summary.counted if summary.counted else 0.0
    accounted = summary.counted == loaded + quarantined
    return dg.MaterializeResult(
        metadata={"dagster/row_count": loaded, "records_counted": summary.counted, "quarantined": quarantined,
                  "users": summary.users, "first_day": summary.first_day or "", "last_day": summary.last_day or "",
                  "quarantine_reasons": table(["reason", "records"], summary.reasons or [("none", 0)]),
                  "preview": preview, "path": dg.MetadataValue.path(str(paths.events))},
        check_results=[
            check("records_accounted", accounted, f"{summary.counted:,} records counted in {spec.source.label()}; "
                  f"{loaded:,} loaded + {quarantined:,} quarantined (read back from the files)"),
            check("quarantine_share", share <= spec.max_quarantine_share,
                  f"{share:.2%} of the records quarantined (at most {spec.max_quarantine_share:.1%}); "
                  f"see {paths.quarantine}" + (f"; most often: {summary.reasons[0][0]}" if summary.reasons else "")
                  + ("" if share <= spec.max_quarantine_share else "; if such records are expected (orders "
                     "without a customer, say), raise max_quarantine_share in the defs.yaml")),
        ])


def load_users_body(context, spec: EventLogSpec, lake, paths: InstancePaths) -> dg.MaterializeResult:
    from churn_dagster.stages.events.load import load_users

    source, mapping = spec.users
    with lake.connect() as con:
        counted, loaded, quarantined = load_users(con, source, mapping, paths.users, paths.users_quarantine)
        read_back = parquet_rows(con, [paths.users]) + parquet_rows(con, [paths.users_quarantine])
        preview = query_table(con, f"SELECT * FROM read_parquet('{literal_path(paths.users)}') LIMIT 10")
    return dg.MaterializeResult(
        metadata={"dagster/row_count": loaded, "rows_counted": counted, "quarantined": quarantined, "preview": preview,
                  "path": dg.MetadataValue.path(str(paths.users))},
        check_results=[check("users_accounted", counted == read_back,
                             f"{counted:,} rows counted in {source.label()}; {loaded:,} loaded + {quarantined:,} "
                             "quarantined (read back from the files)")])


def log_last_day(con, spec: EventLogSpec, paths: InstancePaths) -> date:
    """The log's last day: ``windows.end`` if set (no later event counts), else the newest event's."""
    newest = con.execute(f"SELECT max(local_day) FROM read_parquet('{literal_path(paths.events)}')").fetchone()[0]
    if newest is None:
        raise UserError(f"{paths.events}: the event log holds no event; nothing to build")
    return min(newest, spec.end) if spec.end else newest


def build_cohorts_body(context, spec: EventLogSpec, lake, features, paths: InstancePaths) -> dg.MaterializeResult:
    keys = [date.fromisoformat(k) for k in context.partition_keys]
    with lake.connect() as con:
        last = log_last_day(con, spec, paths)
        ready = [c for c in keys if spec.windows.observation_closes(c) <= last]
        users = dict(users=paths.users, attributes=spec.users[1].attributes) if spec.users else {}
        built = build_cohorts(con, paths.events, ready, last, spec.windows, spec.mapping, features.split,
                              paths.cohort, context.log.info, **users) if ready else []
    waiting = [c for c in keys if c not in ready]
    consistent, problems = True, []
    for b in built:
        folder = paths.cohort(b.cohort)
        n = {name: pq.read_metadata(folder / f"{name}.parquet").num_rows for name in ("features", "labels", "users")}
        if len(set(n.values())) != 1 or n["features"] != b.users:
            consistent = False
            problems.append(f"{b.cohort}: {n}")
    rows = [(b.cohort.isoformat(), b.users, "yes" if b.labelled else "not yet", b.churned if b.churned is not None else "",
             b.train_users) for b in built]
    return dg.MaterializeResult(
        metadata={"dagster/row_count": sum(b.users for b in built), "log_last_day": last.isoformat(),
                  "cohorts": table(["cohort", "users", "labelled", "churned", "train users"], rows or [("none", 0, "", "", 0)]),
                  "not_built": dg.MetadataValue.text(
                      ", ".join(f"{c} (observation closes {spec.windows.observation_closes(c)})" for c in waiting)
                      or "none")},
        check_results=[check("cohorts_consistent", consistent,
                             "features, labels and sequences hold the same users in every cohort built"
                             if consistent else "mismatch: " + "; ".join(problems))])


def train_body(context, spec: EventLogSpec, family: str, config, lake, mlflow, paths: InstancePaths):
    from churn_dagster.studies.churn.event_logs import (
        CohortFolders,
        train_event_log_family,
    )

    cohort = date.fromisoformat(context.partition_key)
    yield from train_event_log_family(context, spec.name, family, cohort, spec.windows, CohortFolders(paths.cohort),
                                      config, mlflow, paths.model(family, cohort), spec.torch_threads, spec.max_epochs)


def _model_rows(paths: InstancePaths, families, cohort: date) -> tuple[list[tuple], dict[str, pd.DataFrame]]:
    rows, predictions = [], {}
    for family in families:
        for target in ("churn", "level"):
            folder = paths.model(family, cohort) / target
            if not (folder / "metrics.json").exists():
                continue
            m = json.loads((folder / "metrics.json").read_text())
            schemes = m["schemes"]
            auc = "roc_auc" if target == "churn" else "roc_auc_ovr_macro"  # as training/ml/metrics.py names them
            rows.append((family, target, schemes["random"]["validation"].get(auc),
                         schemes["random"]["test"].get(auc),
                         schemes.get("out_of_time", {}).get("test", {}).get(auc), m["champion_decision"]))
            if target == "churn":
                frame = pd.read_parquet(folder / "test_predictions.parquet")
                predictions[family] = frame[frame["scheme"] == "random"]
    return rows, predictions


def report_body(context, spec: EventLogSpec, families, paths: InstancePaths) -> dg.MaterializeResult:
    from churn_dagster.studies.churn.ml.reference import reference_comparison

    cohort = date.fromisoformat(context.partition_key)
    rows, predictions = _model_rows(paths, families, cohort)
    metadata = {"models": table(["family", "target", "val AUC", "test AUC", "out-of-time test AUC", "registry"],
                                rows or [("none", "", None, None, None, "nothing trained on this partition")])}
    gains = pd.DataFrame()
    if "rfm_gbm" in predictions and len(predictions) > 1:
        gains = reference_comparison(predictions, "rfm_gbm")
        metadata["gain_over_reference"] = frame_table(gains.round(4))
        best = gains[gains["family"] != "rfm_gbm"].sort_values("test_auc", ascending=False).iloc[0]
        metadata["best_churn_model"] = dg.MetadataValue.text(
            f"{best['family']}: test AUC {best['test_auc']:.4f}, {best['gain']:+.4f} over the reference "
            f"(95 % interval {best['gain_low']:+.4f} .. {best['gain_high']:+.4f}) on {int(best['test_users'])} test users")
    report = {"cohort": cohort.isoformat(), "models": [dict(zip(["family", "target", "val_auc", "test_auc",
                                                                 "out_of_time_test_auc", "registry"], r)) for r in rows],
              "gain_over_reference": gains.to_dict(orient="records")}
    with atomic_path(paths.report(cohort) / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2, default=float))
    trained = {r[0] for r in rows}
    missing = [f for f in families if f not in trained]
    return dg.MaterializeResult(metadata=metadata, check_results=[check(
        "report_complete", not missing, "every family trained" if not missing else f"not trained: {', '.join(missing)}")])


def scores_body(context, spec: EventLogSpec, families, lake, mlflow, paths: InstancePaths) -> dg.MaterializeResult:
    from churn_dagster.storage.postgres_sink import upsert_window
    from churn_dagster.studies.churn.event_log_scores import score_cohort

    cohort = date.fromisoformat(context.partition_key)
    folder = paths.cohort(cohort)
    as_of = spec.windows.observation_closes(cohort)
    if not (folder / "users.parquet").exists():
        return dg.MaterializeResult(
            metadata={"scored": dg.MetadataValue.text(f"not scored: cohort {cohort} is not built (its observation "
                                                      f"closes on {as_of}; see {spec.name}/cohorts)")},
            check_results=[check("scores_valid", True, "nothing scored")])
    frame, used = score_cohort(mlflow, spec.name, families, folder, cohort, as_of)
    if not used:
        return dg.MaterializeResult(
            metadata={"scored": dg.MetadataValue.text(f"not scored: no champion whose labels closed by {as_of}")},
            check_results=[check("scores_valid", True, "nothing scored")])
    with atomic_path(paths.scores(cohort)) as tmp:
        frame.to_parquet(tmp, index=False)
    written = None
    if spec.scores_table is not None:
        import pyarrow as pa

        written = upsert_window(spec.scores_table.uri, spec.scores_table.table,
                                pa.Table.from_pandas(frame, preserve_index=False), "cohort_day", "user_id")
    valid = frame["user_id"].is_unique and frame["p_churn"].dropna().between(0, 1).all()
    return dg.MaterializeResult(
        metadata={"dagster/row_count": len(frame), "models": dg.MetadataValue.json(used),
                  "scored_as_of": as_of.isoformat(), "path": dg.MetadataValue.path(str(paths.scores(cohort))),
                  "postgres_rows": written if written is not None else "no scores_table configured",
                  "preview": frame_table(frame.head(10))},
        check_results=[check("scores_valid", bool(valid), f"{len(frame)} users, one row each, p_churn in [0, 1]")])



