"""What every training asset of an event-log study shares: the ``gpu`` pool (one training at a time), a run
config of the family's hyperparameters, MLflow, and the blocking ``model_sane`` check."""

import dagster as dg

from churn_dagster.core.mlflow_resource import MlflowResource
from churn_dagster.core.resources import LakeResource


def study_model_asset(asset_key: dg.AssetKey, upstream: dg.AssetKey | list[dg.AssetKey], kind: str, description: str,
                      config_class, train, common: dict, warnings: dict[str, str] | None = None) -> dg.AssetsDefinition:
    """``train(context, config, lake, mlflow)`` (a generator of the step's results) as an asset reading
    ``upstream``; ``warnings``: the names and descriptions of the non-blocking checks it also reports."""
    checks = [dg.AssetCheckSpec("model_sane", asset=asset_key, blocking=True,
                                description="finite parameters and validation probabilities"),
              *(dg.AssetCheckSpec(n, asset=asset_key, description=d) for n, d in (warnings or {}).items())]

    @dg.asset(key=asset_key, deps=upstream if isinstance(upstream, list) else [upstream],
              kinds={"python", kind, "mlflow"}, pool="gpu", **common, description=description, check_specs=checks)
    def trained(context: dg.AssetExecutionContext, config: config_class, lake: LakeResource, mlflow: MlflowResource):
        yield from train(context, config, lake, mlflow)

    return trained
