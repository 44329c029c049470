"""Run the whole graph on a long, sparse log in a fresh process (the calendar is read from the environment when
the code location loads), and print what a test needs to know as one JSON line.

    CHURN_FIRST_DAY=... CHURN_LAST_DAY=... python assets_tests/any_log_run.py SOURCE ROOT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).parent))

from conftest import resources_for  # noqa: E402

from churn_dagster.core.partitions import Partitions  # noqa: E402
from churn_dagster.definitions import build_definitions  # noqa: E402
from churn_dagster.runs.runner import run_steps, whole_graph_steps  # noqa: E402
from churn_dagster.settings import settings_from_env  # noqa: E402
from churn_dagster.studies.churn.config import FAMILIES, model_name  # noqa: E402


def main(source: Path, root: Path) -> None:
    settings = settings_from_env()
    epochs = {"ops": {model_name(f, t): {"config": {"epochs": 1}} for f in FAMILIES if "lstm" in f
                      for t in ("binary", "level")}}
    with dg.DagsterInstance.ephemeral() as instance:
        # Without the trend steps: 400 training cohorts would be 400 intent fits, and the trend subgraph has its
        # own test (test_trend_graph.py).
        steps = [s for s in whole_graph_steps(settings, epochs) if not s.job.startswith("trend_")]
        # 150 users over 18 months: the registry's evidence rule asks for one validation user of a class here
        # (30 by default) and no margin, so that the models are registered and the empty window is scored.
        resources = resources_for(source, root, min_validation_users=1, promotion_margin=0.0)
        run_ids = run_steps(build_definitions(resources=resources), instance, steps, echo=lambda _: None)
        notes = [e.dagster_event.event_specific_data.materialization.metadata.get("note")
                 for e in instance.all_logs(run_ids[2], of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
                 if e.dagster_event.event_specific_data.materialization.asset_key.to_user_string() == "cohort_users"]
        checks = [e.dagster_event.event_specific_data for run_id in run_ids
                  for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
    print(json.dumps({
        "last_labelled": settings.calendar.last_labelled_cohort.isoformat(),
        "training_cohorts": settings.training_cohorts,
        "window": [c.isoformat()
                   for c in Partitions(settings).training_cohorts(settings.calendar.last_labelled_cohort)],
        "notes": [n.value for n in notes if n is not None],
        "failed_checks": [(c.asset_key.to_user_string(), c.check_name, c.description) for c in checks if not c.passed],
    }))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
