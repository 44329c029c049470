"""Per-user features of the observation window: the static vector and the KPI aggregates.

Both read only the observation window (days ``f .. f+observation_days-1``) of each cohort user; nothing of
the label period is in their inputs, which the assets' leakage checks verify through
``last_impression_ms``. Values are raw here: imputation, log transforms and standardisation are fit on the
training split by the consumers (tensors, models), never on all users.
"""

from __future__ import annotations

from datetime import date

import duckdb

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.domain.calendar import Calendar
from churn_dagster.stages.cohorts.sql.cohorts import (
    activity_paths,
    cohort_days_dts,
    cohort_paths,
)
from churn_dagster.stages.features.sql.content_stats import (
    CONTENT_STATS_COLUMNS,
    CONTENT_STATS_CTES,
    CONTENT_STATS_JOINS,
    CONTENT_STATS_PANELS,
    POPULAR_TOP_SHARE,
    STATS_CARDS,
    STATS_CREATORS,
)
from churn_dagster.stages.features.sql.window import window_paths
from churn_dagster.storage.duck import exact_avg, exact_sum, literal_path, literal_paths, write_partitions
from churn_dagster.storage.lake import Lake, require


def demographics_sql(use_leaky_columns: bool) -> str:
    """Demographic columns shared by both feature sets.

    registeredMonthCnt above 80 is impossible (the app is younger) and treated as missing. The snapshot is
    taken on 1 Dec 2019, after every label period (:mod:`churn_dagster.domain.snapshots` classifies each
    column): `level` is never used, and the follow count only when ``use_leaky_columns`` asks for it (it counts
    follows made during the label period, so it leaks; kept for measuring that). registeredMonthCnt is a
    registration date: the later measurement adds the same offset to every user of a cohort and nothing of
    their behaviour, so it stays.
    """
    follow = "\n    d.follow_cnt AS follow_count," if use_leaky_columns else ""
    return f"""
    coalesce(d.gender = 'male', false)::INT AS gender_male,
    coalesce(d.gender = 'female', false)::INT AS gender_female,
    (d.gender IS NULL OR d.gender NOT IN ('male', 'female'))::INT AS gender_unknown,
    d.age AS age,
    (d.age IS NULL)::INT AS age_missing,
    CASE WHEN d.registered_month_cnt <= {fmt.MAX_VALID_REGISTERED_MONTHS} THEN d.registered_month_cnt END
        AS registered_months,{follow}
    (d.user_id IS NULL)::INT AS no_demographics_row"""

STATIC_SQL = f"""
CREATE OR REPLACE TEMP TABLE _static AS
WITH users AS (SELECT user_id, cohort_day, first_dt, observation_end_dt FROM read_parquet($cohort_paths, hive_partitioning = false)),
days AS (
    SELECT u.user_id, count(*) AS active_days, max(a.last_impression_ms) AS last_impression_ms
    FROM users u JOIN read_parquet($activity_paths, hive_partitioning = false) a
      ON a.user_id = u.user_id AND a.dt BETWEEN u.first_dt AND u.observation_end_dt
    GROUP BY u.user_id
),
s AS (
    SELECT user_id, count(*) AS total_sessions,
           avg(total_impressions) AS avg_session_impressions, {exact_avg('duration_min')} AS avg_session_duration_min,
           avg(total_clicks) AS avg_session_clicks, {exact_avg('view_time_s')} / 60 AS avg_session_watch_min,
           avg(total_likes) AS avg_session_likes, avg(total_shares) AS avg_session_shares,
           avg(total_comments) AS avg_session_comments,
           sum(total_clicks) / sum(total_impressions) AS user_ctr
    FROM read_parquet($session_paths, hive_partitioning = false) GROUP BY user_id
)
SELECT u.user_id, u.cohort_day, {{demographics}},
       days.active_days, s.total_sessions, s.total_sessions / days.active_days AS avg_daily_sessions,
       s.avg_session_impressions, s.avg_session_duration_min, s.avg_session_clicks, s.avg_session_watch_min,
       s.avg_session_likes, s.avg_session_shares, s.avg_session_comments, s.user_ctr,
       days.last_impression_ms
FROM users u JOIN days USING (user_id) JOIN s USING (user_id)
LEFT JOIN read_parquet($demographics_path, hive_partitioning = false) d ON d.user_id = u.user_id
"""

# The creators' follower counts and account types are measured on 1 Dec 2019, after every label period
# (domain/snapshots.py): their two columns exist only with use_leaky_columns.
LEAKY_CARD_COLUMNS = f"""{exact_avg('ln(1 + c.followeds)')} AS mean_log_creator_followers,
        avg((c.creator_type <> 0)::INT) AS special_creator_share,
        """

# Local midnight starting a user's first label day, in epoch ms (Asia/Shanghai).
_LABEL_START_MS = f"(($first_epoch_day + observation_end_dt)::BIGINT * 86400 - {fmt.SHANGHAI_UTC_OFFSET_SECONDS}) * 1000"

# Day-level totals come from user_day_activity (one row per user and day), so the impression-level pass
# only computes what needs impressions: positions, swipe-down lists, content and creators. The trend compares
# the first and the second half of the observation window ($half days, then the rest), per day. A swipe-down
# entry carries its own log time, up to about an hour after the card was opened: one logged at or after local
# midnight of the first label day is an event of the label period and is not counted.
# Users, cards, creators and categories are numbered (in ID order, so every read of a numbering CTE gives the
# same numbers) and the impression pass joins and groups on those integers: on the text IDs the card and
# creator lookups and the two distinct counts took about a quarter more time and a third more memory.
KPI_SQL = """
CREATE OR REPLACE TEMP TABLE _kpi AS
WITH users AS (
    SELECT user_id, row_number() OVER (ORDER BY user_id) AS user_no, cohort_day, first_dt, observation_end_dt,
           {label_start_ms} AS label_start_ms
    FROM read_parquet($cohort_paths, hive_partitioning = false)
),
days AS (
    SELECT u.user_id, any_value(u.cohort_day) AS cohort_day,
        sum(a.impressions) AS impressions, sum(a.clicks) AS clicks, sum(a.likes) AS likes,
        sum(a.shares) AS shares, sum(a.comments) AS comments, sum(a.view_comments) AS view_comments,
        sum(a.homepage_visits) AS homepage_visits, {watch_min} / 60 AS watch_min,
        sum(a.feed_requests) AS feed_requests, count(*) AS active_days,
        coalesce(sum(a.impressions) FILTER (WHERE a.dt - u.first_dt < $half), 0) AS impressions_first_half,
        coalesce(sum(a.impressions) FILTER (WHERE a.dt - u.first_dt >= $half), 0) AS impressions_second_half,
        count(*) FILTER (WHERE a.dt - u.first_dt < $half) AS active_days_first_half,
        count(*) FILTER (WHERE a.dt - u.first_dt >= $half) AS active_days_second_half,
        coalesce(sum(a.clicks) FILTER (WHERE a.dt - u.first_dt < $half), 0) AS clicks_first_half,
        coalesce(sum(a.clicks) FILTER (WHERE a.dt - u.first_dt >= $half), 0) AS clicks_second_half,
        coalesce(sum(a.impressions) FILTER (WHERE a.dt = u.first_dt), 0) AS impressions_first_day,
        any_value(u.observation_end_dt) - max(a.dt) AS days_since_last_active,
        max(a.last_impression_ms) AS last_impression_ms
    FROM users u JOIN read_parquet($activity_paths, hive_partitioning = false) a
      ON a.user_id = u.user_id AND a.dt BETWEEN u.first_dt AND u.observation_end_dt
    GROUP BY u.user_id
),
{content_stats_ctes}
card_keys AS (
    SELECT mlog_id, row_number() OVER (ORDER BY mlog_id) AS card_no
    FROM (SELECT DISTINCT mlog_id FROM read_parquet($cards_path, hive_partitioning = false){stats_cards})
),
creator_keys AS (
    SELECT creator_id, row_number() OVER (ORDER BY creator_id) AS creator_no
    FROM (SELECT DISTINCT creator_id FROM read_parquet($cards_path, hive_partitioning = false) WHERE creator_id IS NOT NULL
          {stats_creators})
),
cards AS (
    SELECT k.mlog_id, k.card_no, m.mlog_id IS NOT NULL AS known, m.type, m.publish_time, r.creator_no,
           CASE WHEN m.content_id IS NOT NULL THEN dense_rank() OVER (ORDER BY split_part(m.content_id, ',', 1)) END
               AS category_no,
           c.followeds, c.creator_type
    FROM card_keys k LEFT JOIN read_parquet($cards_path, hive_partitioning = false) m USING (mlog_id)
    LEFT JOIN creator_keys r ON r.creator_id = m.creator_id
    LEFT JOIN read_parquet($creators_path, hive_partitioning = false) c ON c.creator_id = m.creator_id
),{content_stats_panels}
content AS (
    SELECT u.user_no,
        avg(i.impress_position) AS mean_position, max(i.impress_position) AS max_position,
        avg((i.impress_position > 4)::INT) AS deep_position_share,
        count_if(i.detail_items IS NOT NULL) AS swipe_lists,
        coalesce(sum(len(list_filter(i.detail_items, lambda x: x.logtime_ms < u.label_start_ms))), 0) AS swipe_items,
        avg((c.type = 2)::INT) AS video_share,
        count_if(i.is_click AND c.type = 2) / greatest(count_if(c.type = 2), 1) AS video_ctr,
        count_if(i.is_click AND c.type = 1) / greatest(count_if(c.type = 1), 1) AS image_ctr,
        count(DISTINCT c.creator_no) AS distinct_creators, count(DISTINCT c.category_no) AS distinct_categories,
        avg(i.dt - ($publish_anchor - c.publish_time)) AS mean_card_age_days,
        {leaky_card_columns}avg((NOT coalesce(c.known, false))::INT) AS unknown_card_share,
        count_if(NOT i.is_click AND (i.is_like OR i.is_share OR i.is_comment OR i.is_view_comment OR i.is_into_homepage))
            AS actions_without_click{content_stats_columns}
    FROM read_parquet($impression_paths, hive_partitioning = false) i
    JOIN users u ON i.user_id = u.user_id AND i.dt BETWEEN u.first_dt AND u.observation_end_dt
    LEFT JOIN cards c ON c.mlog_id = i.mlog_id{content_stats_joins}
    GROUP BY u.user_no
)
SELECT a.* EXCLUDE (last_impression_ms), k.* EXCLUDE (user_no),
       a.clicks / a.impressions AS ctr,
       a.likes / greatest(a.clicks, 1) AS like_per_click, a.view_comments / greatest(a.clicks, 1) AS view_comment_per_click,
       (a.likes + a.shares + a.comments + a.view_comments + a.homepage_visits) / a.impressions AS interaction_rate,
       a.impressions / a.active_days AS impressions_per_active_day, a.clicks / a.active_days AS clicks_per_active_day,
       a.feed_requests / a.active_days AS requests_per_active_day,
       (a.impressions_second_half / $second_half_days - a.impressions_first_half / $half)
           / (a.impressions_second_half / $second_half_days + a.impressions_first_half / $half) AS impression_trend,
       a.active_days_second_half / $second_half_days - a.active_days_first_half / $half AS active_day_trend,
       {demographics},
       a.last_impression_ms
FROM days a JOIN users n USING (user_id) JOIN content k USING (user_no) LEFT JOIN read_parquet($demographics_path, hive_partitioning = false) d ON d.user_id = a.user_id
"""


def _common_params(lake: Lake, calendar: Calendar, cohorts: list[date], what: str) -> dict:
    return {
        "cohort_paths": cohort_paths(lake, "cohort_users", cohorts, what),
        "demographics_path": literal_path(require([lake.raw_snapshot(fmt.USER_DEMOGRAPHICS.stem)], what)[0]),
    }


def build_static_features(
    con: duckdb.DuckDBPyConnection, lake: Lake, calendar: Calendar, cohorts: list[date], use_leaky_columns: bool = False
) -> dict[date, int]:
    params = {
        **_common_params(lake, calendar, cohorts, "static_features"),
        "activity_paths": activity_paths(
            lake, calendar, cohort_days_dts(calendar, cohorts, "observation"), "static_features"
        ),
        "session_paths": cohort_paths(lake, "sessions", cohorts, "static_features"),
    }
    con.execute(STATIC_SQL.format(demographics=demographics_sql(use_leaky_columns)), params)
    targets = {c: lake.cohort("static_features", c) for c in cohorts}
    written = write_partitions(con, "_static", "cohort_day", targets, "user_id")
    con.execute("DROP TABLE _static")
    return written


def build_kpi_features(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    calendar: Calendar,
    cohorts: list[date],
    publish_day_anchor: int,
    use_leaky_columns: bool = False,
    use_content_stats: bool = True,
) -> dict[date, int]:
    """KPI aggregates; ``publish_day_anchor`` converts publishTime to a day (dt = anchor - publishTime). The
    impressions come from ``window_impressions``, the day totals from ``user_day_activity``.

    With ``use_content_stats`` (the default) the table also holds :data:`~churn_dagster.stages.features.sql.content_stats.CONTENT_STATS_FEATURES`, the
    popularity and freshness of the cards each user was shown or clicked and the publishing activity of their
    creators, from ``mlog_stats`` and ``creator_stats`` of the observation days only: a card's figures on the
    impression's day d, or summed over the user's days f .. d, and a creator's publications over f .. d. The
    stats of day d include that day's own activity (the user's impression among it), which lies inside the
    observation window; nothing of a day after d, and so nothing of the label period, is used. Where a user
    has nothing to average (no card with stats, no click) the column is NULL, which the models impute on
    their training users.
    """
    dts = cohort_days_dts(calendar, cohorts, "observation")
    params = {
        **_common_params(lake, calendar, cohorts, "kpi_features"),
        "impression_paths": window_paths(lake, cohorts, "kpi_features"),
        "activity_paths": activity_paths(lake, calendar, dts, "kpi_features"),
        "cards_path": literal_path(require([lake.raw_snapshot(fmt.MLOG_DEMOGRAPHICS.stem)], "kpi_features")[0]),
        "creators_path": literal_path(require([lake.raw_snapshot(fmt.CREATOR_DEMOGRAPHICS.stem)], "kpi_features")[0]),
        "publish_anchor": publish_day_anchor,
        "first_epoch_day": (calendar.first_day - date(1970, 1, 1)).days,
        "half": float(calendar.observation_days // 2 or 1),
        "second_half_days": float(calendar.observation_days - (calendar.observation_days // 2 or 1) or 1),
    }
    if use_content_stats:
        params.update({
            "stats_dts": list(dts),
            "mlog_stats_paths": literal_paths(
                require((lake.raw_day(fmt.MLOG_STATS.stem, calendar.day(d)) for d in dts), "kpi_features")
            ),
            "creator_stats_paths": literal_paths(
                require((lake.raw_day(fmt.CREATOR_STATS.stem, calendar.day(d)) for d in dts), "kpi_features")
            ),
            "popular_cume_dist": 1.0 - POPULAR_TOP_SHARE,
        })
    sql = KPI_SQL.format(
        label_start_ms=_LABEL_START_MS,
        demographics=demographics_sql(use_leaky_columns),
        leaky_card_columns=LEAKY_CARD_COLUMNS if use_leaky_columns else "",
        watch_min=exact_sum("a.view_time_s"),
        content_stats_ctes=CONTENT_STATS_CTES if use_content_stats else "",
        content_stats_panels=CONTENT_STATS_PANELS if use_content_stats else "",
        stats_cards=STATS_CARDS if use_content_stats else "",
        stats_creators=STATS_CREATORS if use_content_stats else "",
        content_stats_columns=CONTENT_STATS_COLUMNS if use_content_stats else "",
        content_stats_joins=CONTENT_STATS_JOINS if use_content_stats else "",
    )
    con.execute(sql, params)
    written = write_partitions(con, "_kpi", "cohort_day", {c: lake.cohort("kpi_features", c) for c in cohorts}, "user_id")
    con.execute("DROP TABLE _kpi")
    return written
