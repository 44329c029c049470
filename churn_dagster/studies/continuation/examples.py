"""Session continuation data per cohort: every feed request of the observation window with its labels and
features, and the per-user sample of them that the models learn from (split by user via ``user_splits``)."""

import dagster as dg

from churn_dagster.core import checks
from churn_dagster.core.asset_attributes import cohort_asset
from churn_dagster.core.metadata import (
    add_partition_metadata,
    check,
    query_table,
    schema_metadata,
)
from churn_dagster.core.partitions import Partitions
from churn_dagster.core.resources import FeatureSettingsResource, LakeResource
from churn_dagster.domain.calendar import parse_day
from churn_dagster.storage.duck import literal_paths
from churn_dagster.studies.continuation.sql import checks as continuation_checks
from churn_dagster.studies.continuation.sql import examples as continuation_sql
from churn_dagster.training.config import config_class

SamplingConfig = config_class(
    "ContinuationSamplingConfig", "How many requests of each user become continuation examples, picked how.",
    continuation_sql.ExampleSampling())

_LONGEST = f"{max(continuation_sql.HORIZONS_MIN)} minutes"  # the censoring margin is this plus the session gap
_MONOTONE = "continues_30min implies continues_20min implies continues_10min, on every row."


def _shares(p: Partitions, con, group_by: str):
    return lambda key, path: {"reads_days": p.days_read(p.calendar.observation_dts(parse_day(key))),
                              "label_shares": query_table(con, continuation_checks.label_shares_sql(group_by),
                                                          {"f": literal_paths([path])})}


def example_assets(p: Partitions) -> list[dg.AssetsDefinition]:
    """``continuation_requests`` and ``continuation_examples``."""
    CONTINUATION_DATA = cohort_asset(p, "continuation", code_version="2")

    @dg.asset(
        description="Every feed request (the cards of one user sharing one impressTime) in the sessions of each cohort "
        "user's observation window (30-minute rule), with the labels 'the session continues for at least 10/20/30 more "
        "minutes' (session end = its last request; exactly h counts) and what was known at the request: elapsed time, "
        "requests and cards so far, the clicks the log proves happened before it (a swipe-down entry under the card "
        "logged earlier), minutes since the last such click, hour, weekday, and the user's earlier sessions. Requests "
        f"less than {_LONGEST} plus the session gap before the window's end are flagged censored, whatever their "
        "session did.",
        deps=["cohort_users", "sessions", "window_impressions"],
        check_specs=[
            dg.AssetCheckSpec("sessions_agree", asset="continuation_requests", blocking=True,
                              description="The requests form exactly the sessions of the sessions table: same bounds, "
                              "requests and impressions."),
            dg.AssetCheckSpec("labels_monotone", asset="continuation_requests", blocking=True, description=_MONOTONE),
        ],
        **CONTINUATION_DATA,
    )
    def continuation_requests(context: dg.AssetExecutionContext, lake: LakeResource, features: FeatureSettingsResource):
        cohorts = [parse_day(k) for k in context.partition_keys]
        with lake.connect() as con:
            continuation_sql.build_requests(con, lake.lake, p.calendar, cohorts, features.session_gap_minutes)
            out = checks.lake_paths(lake.lake, "continuation_requests", cohorts)
            bad, compared = continuation_checks.sessions_disagreeing(con, lake.lake, cohorts)
            unmonotone = continuation_checks.unmonotone_labels(con, literal_paths(out))
            add_partition_metadata(context, con, dict(zip(context.partition_keys, out, strict=True)),
                                   _shares(p, con, "CASE WHEN censored THEN 'censored' ELSE 'complete' END"))
            meta = {**schema_metadata(con, out), **features.metadata(p.calendar)}
            results = [
                check("sessions_agree", bad == 0, f"{bad} of {compared} sessions differ from the sessions table"),
                check("labels_monotone", unmonotone == 0, f"{unmonotone} requests with non-nested labels"),
            ]
        return dg.MaterializeResult(metadata=meta, check_results=results)


    @dg.asset(
        description="The continuation examples: each user's uncensored requests in a seeded hash order (md5 of user, "
        "request time and seed), at most max_requests_per_user of them, so heavy users do not dominate; with the user's "
        "train/validation/test split from user_splits.",
        deps=["continuation_requests", "user_splits", "sessions", "cohort_users", "window_impressions"],
        check_specs=[
            dg.AssetCheckSpec("sample_cap", asset="continuation_examples", blocking=True,
                              description="Each user has min(cap, uncensored requests) examples."),
            dg.AssetCheckSpec("features_use_only_the_past", asset="continuation_examples", blocking=True,
                              description="Cards and proven clicks so far and the earlier sessions' cards and proven "
                              "clicks, recounted from the window's impressions up to each request, equal the stored features."),
            dg.AssetCheckSpec("labels_monotone", asset="continuation_examples", blocking=True, description=_MONOTONE),
            dg.AssetCheckSpec("labels_match_sessions", asset="continuation_examples", blocking=True,
                              description="Every label equals (last request of the session in the sessions table - "
                              "request time >= h); no example is censored."),
            dg.AssetCheckSpec("labels_read_inside_the_window", asset="continuation_examples", blocking=True,
                              description=f"Every example lies at least {_LONGEST} plus the session gap before the end "
                              "of its observation window, so its labels are read from the window however its session "
                              "went."),
        ],
        **CONTINUATION_DATA,
    )
    def continuation_examples(context: dg.AssetExecutionContext, config: SamplingConfig, lake: LakeResource,
                              features: FeatureSettingsResource):
        cohorts = [parse_day(k) for k in context.partition_keys]
        sampling = continuation_sql.ExampleSampling(config.max_requests_per_user, config.seed)
        with lake.connect() as con:
            continuation_sql.build_examples(con, lake.lake, cohorts, sampling)
            out = checks.lake_paths(lake.lake, "continuation_examples", cohorts)
            found = continuation_checks.check_examples(con, lake.lake, p.calendar, cohorts, sampling,
                                                       features.session_gap_minutes)
            add_partition_metadata(context, con, dict(zip(context.partition_keys, out, strict=True)), _shares(p, con, "split"))
            meta = {**schema_metadata(con, out), "sampling": dg.MetadataValue.json(
                {"max_requests_per_user": sampling.max_requests_per_user, "seed": sampling.seed})}
            results = [
                check("sample_cap", found.over_cap == 0, f"{found.over_cap} users whose example count is not "
                      f"min({sampling.max_requests_per_user}, their uncensored requests)"),
                check("features_use_only_the_past", found.future_inputs == 0,
                      f"{found.future_inputs} examples whose prefix features differ from a recount of the impressions "
                      "up to their request"),
                check("labels_monotone", found.unmonotone == 0, f"{found.unmonotone} examples with non-nested labels"),
                check("labels_match_sessions", found.label_mismatches == 0,
                      f"{found.label_mismatches} examples whose labels or session disagree with the sessions table"),
                check("labels_read_inside_the_window", found.too_late == 0,
                      f"{found.too_late} examples less than {_LONGEST} plus the session gap before their window's end"),
            ]
        return dg.MaterializeResult(metadata=meta, check_results=results)

    return [continuation_requests, continuation_examples]
