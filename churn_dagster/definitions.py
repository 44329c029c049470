"""The code location: every asset, check, job, sensor, schedule and resource of churn_dagster in one
``Definitions``, built from one :class:`~churn_dagster.settings.Settings`: the shared stages
(:mod:`churn_dagster.stages`), the four studies (:mod:`churn_dagster.studies`) and the automation, with the
executor the deployment chose for the jobs that do not pin their own (:mod:`churn_dagster.core.step_containers`).

:func:`build_definitions` reads nothing but its settings, so one process can build two code locations with two
settings; ``defs`` is what Dagster loads (``workspace.yaml``, ``[tool.dagster]``, ``[tool.dg]``), with the
settings of the process environment, read once when Dagster loads it.
"""

import warnings
from pathlib import Path

import dagster as dg

from churn_dagster.automation.landing import landing_sensors
from churn_dagster.automation.retrain import automation_sensors, retrain_schedules
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import settings_resources
from churn_dagster.core.step_containers import step_executor
from churn_dagster.jobs import build_jobs
from churn_dagster.settings import Settings, settings_from_env
from churn_dagster.stages.definitions import stage_assets
from churn_dagster.studies.case_study.definitions import case_study_assets
from churn_dagster.studies.churn.definitions import churn_assets
from churn_dagster.studies.continuation.definitions import continuation_assets
from churn_dagster.studies.trends.definitions import trend_assets


def build_definitions(settings: Settings | None = None, resources: dict | None = None) -> dg.Definitions:
    """The code location for ``settings`` (default: read from the environment now), with ``resources`` (default:
    built from the same settings)."""
    settings = settings or settings_from_env()
    p = Partitions(settings)
    jobs = build_jobs(settings)
    return dg.Definitions(
        assets=[*stage_assets(p), *churn_assets(p), *trend_assets(p), *case_study_assets(p), *continuation_assets(p)],
        jobs=list(jobs.values()),
        schedules=retrain_schedules(p, jobs),
        sensors=[*landing_sensors(p, jobs), *automation_sensors()],
        resources=resources or settings_resources(settings),
        executor=step_executor(settings),
    )


def shared_resources(settings: Settings | None = None) -> dg.Definitions:
    """Only the resources (the data directory, MLflow, the split settings), for a dg project of its own that
    holds event-log instances only (``docs/EVENT_LOGS.md``): it merges these with its defs folder."""
    return dg.Definitions(resources=settings_resources(settings or settings_from_env()))


def project_root() -> Path | None:
    """The folder of the pyproject.toml that declares this dg project (``[tool.dg]``), above this file; None for
    an installed wheel, which carries no defs folder of its own to read YAML from."""
    for folder in Path(__file__).resolve().parents:
        config = folder / "pyproject.toml"
        if config.is_file() and "[tool.dg]" in config.read_text():
            return folder
    return None


@dg.definitions
def defs() -> dg.Definitions:
    """The code location Dagster loads (``dagster dev``, ``dg dev``, ``dg list defs``), with the settings of the
    process environment, and whatever the defs folder (``churn_dagster/defs/``) declares in YAML: its
    ``defs.yaml`` files travel in the wheel (package data), so an installed package (the Docker image) loads the
    event-log instances of the checkout it was built from; relative source paths are then read from the folder
    the package is installed in, so give a deployment absolute paths."""
    import churn_dagster.defs as defs_folder

    root = project_root() or Path(defs_folder.__file__).resolve().parents[2]
    with warnings.catch_warnings():
        # Dagster marks its own module loader inside the defs-folder walk as a preview: nothing to act on
        warnings.simplefilter("ignore", dg.PreviewWarning)
        folder_defs = dg.ComponentTree.from_module(defs_module=defs_folder, project_root=root).build_defs()
    return dg.Definitions.merge(build_definitions(), folder_defs)
