"""The NCM case study (2021): will a user's click-through rate over days 11-30 be above the mean, judged from
what they did on days 1-10? The features and the labels, as DuckDB SQL over ``user_day_activity``.

- **Population**: every user with an impression in the feature window (days 1 .. F). A user first seen later
  has no early actions to predict from.
- **Features** (the case study's inputs): the feature window's clicks, comments, homepage visits, shares,
  comment views, likes and view time summed per user, and the demographics province, age, gender and
  registered months (``registeredMonthCnt`` above 80 is impossible and read as missing). The follow count,
  measured on 1 Dec 2019 after every target day, only behind ``CHURN_USE_LEAKY_COLUMNS``. Impressions are not
  among the case study's inputs and are left out here too. Values stay raw: scaling and imputation are fit
  by the models on training rows.
- **Split**: the project's split rule (:func:`churn_dagster.stages.cohorts.sql.labels.split_sql`, a seeded hash of the
  user id), so a user is in the same split here as in ``user_splits`` and in every other study, whether or
  not their cohort is labelled.
- **Target**: CTR = clicks / impressions over the target window (days F+1 .. F+T). The threshold is the mean
  per-user CTR of the *training* users with a target-window impression (the case study's 2.338% was the mean
  over every user of the month); it is stored and every user is labelled against it. Active = CTR strictly
  above it; a user without a target-window impression has no CTR and is inactive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import duckdb

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.domain.calendar import Calendar
from churn_dagster.stages.cohorts.sql.cohorts import activity_paths
from churn_dagster.stages.cohorts.sql.labels import SplitSettings, split_params, split_sql
from churn_dagster.storage.duck import copy_to_parquet, exact_avg, exact_sum, literal_path, literal_paths
from churn_dagster.storage.lake import Lake, require

ACTIVITY_FEATURES = ("clicks", "comments", "homepage_visits", "shares", "comment_views", "likes", "view_time_s")
DEMOGRAPHIC_FEATURES = ("province", "age", "gender", "registered_months")
FOLLOW_COUNT = "follow_count"


@dataclass(frozen=True)
class Windows:
    """Feature days 1 .. ``feature_days``, then ``target_days`` target days (``CHURN_CASE_STUDY_*``)."""

    feature_days: int = 10
    target_days: int = 20

    @property
    def feature_dts(self) -> range:
        return range(1, self.feature_days + 1)

    @property
    def target_dts(self) -> range:
        return range(self.feature_days + 1, self.feature_days + self.target_days + 1)


@dataclass(frozen=True)
class Threshold:
    """The mean target-window CTR of the training users with an impression there (None when there is none)."""

    value: float | None
    fitted_on_users: int

    def to_dict(self) -> dict:
        return {"threshold": self.value, "fitted_on_users": self.fitted_on_users, "fitted_on": "train",
                "rule": "active = target-window CTR > threshold; no target-window impression = inactive"}


def features_path(lake: Lake):
    return lake.root / "case_study" / "features" / "data.parquet"


def labels_path(lake: Lake):
    return lake.root / "case_study" / "labels" / "data.parquet"


def threshold_path(lake: Lake):
    return lake.root / "case_study" / "labels" / "threshold.json"


FEATURES_SQL = """
WITH early AS (
    SELECT user_id, min(dt) AS first_dt, max(dt) AS last_feature_dt,
           sum(clicks) AS clicks, sum(comments) AS comments, sum(homepage_visits) AS homepage_visits,
           sum(shares) AS shares, sum(view_comments) AS comment_views, sum(likes) AS likes,
           round({view_time_sum}, 6) AS view_time_s
    FROM read_parquet($activity, hive_partitioning = false)
    WHERE dt BETWEEN 1 AND $feature_days
    GROUP BY user_id
)
SELECT e.user_id, e.first_dt, e.last_feature_dt,
       e.clicks::BIGINT AS clicks, e.comments::BIGINT AS comments, e.homepage_visits::BIGINT AS homepage_visits,
       e.shares::BIGINT AS shares, e.comment_views::BIGINT AS comment_views, e.likes::BIGINT AS likes,
       e.view_time_s::DOUBLE AS view_time_s,
       d.province, d.age::DOUBLE AS age, d.gender,
       CASE WHEN d.registered_month_cnt <= {max_months} THEN d.registered_month_cnt END::DOUBLE AS registered_months,
       {follow}(d.user_id IS NULL) AS no_demographics_row
FROM early e LEFT JOIN read_parquet($demographics, hive_partitioning = false) d USING (user_id)
ORDER BY e.user_id
"""


def build_features(con: duckdb.DuckDBPyConnection, lake: Lake, calendar: Calendar, windows: Windows,
                   use_leaky_columns: bool = False) -> int:
    """One row per user active in the feature window; returns the row count."""
    follow = f"d.follow_cnt::DOUBLE AS {FOLLOW_COUNT}, " if use_leaky_columns else ""
    sql = FEATURES_SQL.format(max_months=fmt.MAX_VALID_REGISTERED_MONTHS, follow=follow,
                              view_time_sum=exact_sum("view_time_s"))
    demographics = require([lake.raw_snapshot("user_demographics")], "case_study_features")[0]
    return copy_to_parquet(con, sql, features_path(lake), {
        "activity": activity_paths(lake, calendar, windows.feature_dts, "case_study_features"),
        "demographics": literal_path(demographics),
        "feature_days": windows.feature_days,
    })


TARGET_SQL = """
CREATE OR REPLACE TEMP TABLE _case_study AS
WITH target AS (
    SELECT user_id, sum(impressions) AS impressions, sum(clicks) AS clicks
    FROM read_parquet($activity, hive_partitioning = false)
    WHERE dt BETWEEN $first_target_dt AND $last_target_dt
    GROUP BY user_id
),
users AS (SELECT user_id, first_dt FROM read_parquet($features, hive_partitioning = false))
SELECT u.user_id, u.first_dt, {split} AS split,
       coalesce(t.impressions, 0)::BIGINT AS target_impressions,
       coalesce(t.clicks, 0)::BIGINT AS target_clicks,
       CASE WHEN t.impressions > 0 THEN t.clicks / t.impressions END::DOUBLE AS target_ctr
FROM users u LEFT JOIN target t USING (user_id)
"""


def build_labels(con: duckdb.DuckDBPyConnection, lake: Lake, calendar: Calendar, windows: Windows,
                 split: SplitSettings) -> tuple[int, Threshold]:
    """Split, target-window CTR and the active label of every feature user, with the threshold fit on the
    training users."""
    con.execute(TARGET_SQL.format(split=split_sql("u.user_id")), {
        "activity": activity_paths(lake, calendar, windows.target_dts, "case_study_labels"),
        "first_target_dt": windows.target_dts[0], "last_target_dt": windows.target_dts[-1],
        "features": literal_paths(require([features_path(lake)], "case_study_labels")),
        **split_params(split),
    })
    threshold = fit_threshold(con)
    rows = copy_to_parquet(
        con,
        "SELECT *, coalesce(target_ctr > $threshold, false) AS active FROM _case_study ORDER BY user_id",
        labels_path(lake),
        # An undefined threshold (no training user with a target-window impression) labels nobody active.
        {"threshold": math.inf if threshold.value is None else threshold.value},
    )
    con.execute("DROP TABLE _case_study")
    return rows, threshold


def fit_threshold(con: duckdb.DuckDBPyConnection, table: str = "_case_study") -> Threshold:
    """The mean per-user CTR over the training users that have one: training rows only, by construction."""
    mean, users = con.execute(
        f"SELECT {exact_avg('target_ctr')}, count(target_ctr) FROM {table} WHERE split = 'train'").fetchone()
    return Threshold(None if users == 0 else float(mean), int(users))
