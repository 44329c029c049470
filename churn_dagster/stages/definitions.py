"""The shared data graph's assets, stage by stage, for one set of partitions."""

import dagster as dg

from churn_dagster.core.partitions import Partitions
from churn_dagster.stages.cohorts.labels import label_assets
from churn_dagster.stages.cohorts.membership import membership_assets
from churn_dagster.stages.features.sessions import session_assets
from churn_dagster.stages.features.user_features import user_feature_assets
from churn_dagster.stages.features.window import window_assets
from churn_dagster.stages.ingest.activity import activity_assets
from churn_dagster.stages.ingest.raw import raw_assets
from churn_dagster.stages.tensors.sequences import tensor_assets


def stage_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    return [
        *raw_assets(p), *activity_assets(p),                 # ingest
        *membership_assets(p), *label_assets(p),             # cohorts
        *window_assets(p), *session_assets(p), *user_feature_assets(p),  # features
        *tensor_assets(p),                                   # tensors
    ]
