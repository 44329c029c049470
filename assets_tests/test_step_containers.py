"""The executor the deployment chooses (churn_dagster/core/step_containers.py): Dagster's default unless
CHURN_STEP_IMAGE is set, then dagster-docker's docker_executor with the network, volumes and variables the
steps need; wrong settings fail with one line that names the variable. test_docker_stack runs it for real."""

from __future__ import annotations

import pytest

from churn_dagster.core.step_containers import step_container_config, step_executor
from churn_dagster.settings import SettingsError, settings_from_env

SETTINGS = {
    "CHURN_STEP_IMAGE": "churn_dagster:latest", "CHURN_STEP_NETWORK": "churn_default",
    "CHURN_STEP_VOLUMES": "churn_data:/data, churn_dagster_storage:/opt/dagster/home/storage,/srv/landing:/landing:ro",
    "CHURN_DATA_DIR": "/data", "DAGSTER_PG_HOST": "postgres", "MLFLOW_TRACKING_URI": "http://mlflow:5000",
    "HOME": "/home/churn", "PATH": "/usr/bin",
}


def test_without_a_step_image_the_default_executor_stays():
    assert step_executor(settings_from_env({"CHURN_DATA_DIR": "/data"})) is None


@pytest.mark.parametrize("missing", ["CHURN_STEP_NETWORK", "CHURN_STEP_VOLUMES"])
def test_a_step_image_needs_network_and_volumes(missing):
    settings = {k: v for k, v in SETTINGS.items() if k != missing}
    with pytest.raises(SettingsError, match="set CHURN_STEP_NETWORK .* and CHURN_STEP_VOLUMES"):
        settings_from_env(settings)


@pytest.mark.parametrize("spec", ["data", "churn_data:data", "./landing:/landing:ro"])
def test_volume_specs_are_named_volumes_or_absolute_paths(spec):
    with pytest.raises(SettingsError, match=f"CHURN_STEP_VOLUMES='{spec}' is not allowed: expected comma-separated"):
        settings_from_env({**SETTINGS, "CHURN_STEP_VOLUMES": spec})


def test_steps_get_image_network_volumes_and_the_pipeline_variables():
    config = step_container_config(settings_from_env(SETTINGS))
    assert config == {
        "image": "churn_dagster:latest", "network": "churn_default",
        "env_vars": ["CHURN_DATA_DIR", "CHURN_STEP_IMAGE", "CHURN_STEP_NETWORK", "CHURN_STEP_VOLUMES",
                     "DAGSTER_PG_HOST", "MLFLOW_TRACKING_URI"],  # not HOME or PATH: the image sets its own
        "container_kwargs": {
            "volumes": ["churn_data:/data", "churn_dagster_storage:/opt/dagster/home/storage", "/srv/landing:/landing:ro"],
            "labels": {"churn_dagster.step_network": "churn_default"}},
    }


def test_the_configuration_is_valid_for_the_docker_executor():
    pytest.importorskip("dagster_docker", reason="dagster-docker, a dependency in pyproject.toml, is not installed")
    assert step_executor(settings_from_env(SETTINGS)).name == "docker"
