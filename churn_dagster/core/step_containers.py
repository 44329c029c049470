"""Where the steps of a run execute, chosen by the deployment in this one place.

By default the steps run in the run worker, which under docker compose lives in the code server's container:
in its own process for the data jobs (``in_process_executor``, :mod:`churn_dagster.jobs`), as a process
each for the others (Dagster's default). A deployment that sets ``CHURN_STEP_IMAGE`` (as
``deploy/compose.step-containers.yml`` does) gets dagster-docker's ``docker_executor`` for every job: each
step starts in a fresh container of that image, on ``CHURN_STEP_NETWORK`` with the ``CHURN_STEP_VOLUMES``
mounted, so that a step is isolated from the others while they share the data volume and the instance. It is
the one-host shape of the Kubernetes ``k8s_job_executor`` (docs/DEPLOYMENT.md).

The steps receive the run worker's ``CHURN_*``, ``DAGSTER_PG_*`` and ``MLFLOW_*`` variables, so that they load
the same definitions, reach the same PostgreSQL and MLflow, and read and write the same paths. Every step
container is labelled ``churn_dagster.step_network=<network>``: stopped ones are removed with
``docker container prune --filter label=churn_dagster.step_network``.
"""

from __future__ import annotations

import dagster as dg

from churn_dagster.settings import Settings

STEP_LABEL = "churn_dagster.step_network"


def step_container_config(settings: Settings) -> dict | None:
    """The ``docker_executor`` configuration that ``settings`` ask for, or None without ``CHURN_STEP_IMAGE``
    (the settings have checked that the network and the volumes come with it)."""
    if not settings.step_image:
        return None
    return {
        "image": settings.step_image,
        "network": settings.step_network,
        "env_vars": list(settings.forwarded),
        "container_kwargs": {"volumes": list(settings.step_volumes), "labels": {STEP_LABEL: settings.step_network}},
    }


def step_executor(settings: Settings) -> dg.ExecutorDefinition | None:
    """dagster-docker's executor configured from ``settings``, or None (Dagster's default)."""
    config = step_container_config(settings)
    if config is None:
        return None
    # Imported here: only a deployment with step containers needs the package.
    from dagster_docker import docker_executor

    return docker_executor.configured(config)
