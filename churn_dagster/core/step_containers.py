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

import os
from collections.abc import Mapping

import dagster as dg

from churn_dagster.errors import UserError

FORWARDED_PREFIXES = ("CHURN_", "DAGSTER_PG_", "MLFLOW_")
STEP_LABEL = "churn_dagster.step_network"


class StepContainerSettingError(UserError):
    """``CHURN_STEP_IMAGE`` is set but the network or the volumes of the step containers are not."""

    exit_code = 2


def step_volumes(spec: str) -> list[str]:
    """``CHURN_STEP_VOLUMES`` as Docker volume specs: comma-separated ``source:target[:mode]``, each source
    a named volume or an absolute host path (a relative one would resolve against no known folder)."""
    volumes = [v.strip() for v in spec.split(",") if v.strip()]
    for volume in volumes:
        source, _, target = volume.partition(":")
        if not target.startswith("/") or ("/" in source and not source.startswith("/")):
            raise StepContainerSettingError(
                f"CHURN_STEP_VOLUMES entry {volume!r} is not 'volume_name:/path' or '/host/path:/path[:ro]'")
    return volumes


def step_container_config(environ: Mapping[str, str] = os.environ) -> dict | None:
    """The ``docker_executor`` configuration that ``environ`` asks for, or None without ``CHURN_STEP_IMAGE``."""
    image = environ.get("CHURN_STEP_IMAGE", "").strip()
    if not image:
        return None
    network = environ.get("CHURN_STEP_NETWORK", "").strip()
    volumes = step_volumes(environ.get("CHURN_STEP_VOLUMES", ""))
    if not network or not volumes:
        raise StepContainerSettingError(
            "CHURN_STEP_IMAGE is set, so every step runs in a container: set CHURN_STEP_NETWORK (the compose "
            "network) and CHURN_STEP_VOLUMES (at least the data volume, e.g. churn_dagster_data:/data) as well")
    return {
        "image": image,
        "network": network,
        "env_vars": sorted(name for name in environ if name.startswith(FORWARDED_PREFIXES)),
        "container_kwargs": {"volumes": volumes, "labels": {STEP_LABEL: network}},
    }


def step_executor(environ: Mapping[str, str] = os.environ) -> dg.ExecutorDefinition | None:
    """dagster-docker's executor configured from ``environ``, or None (Dagster's default)."""
    config = step_container_config(environ)
    if config is None:
        return None
    # Imported here: only a deployment with step containers needs the package.
    from dagster_docker import docker_executor

    return docker_executor.configured(config)
