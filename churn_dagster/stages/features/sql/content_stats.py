"""The KPI features' card and creator statistics (``use_content_stats``): SQL pieces that
:data:`churn_dagster.stages.features.sql.features.KPI_SQL` takes in when the setting is on.

The popularity and freshness of the cards a user was shown or clicked and the publishing activity of their
creators, from ``mlog_stats`` and ``creator_stats`` of the observation days up to each impression's day.
"""

from churn_dagster.storage.duck import exact_avg

# Card and creator statistics of the observation days (``use_content_stats``). Both daily tables are made dense
# over the days the build reads ($stats_dts: every observation day of the cohorts built, zero where a card or
# creator has no row) so that a running sum per card or creator gives, by two equality joins, the total over
# the user's own days f .. d, d being the impression's day: the running sum at d minus the running sum before
# f (at f, less day f itself). Only days up to the impression's day, inside the observation window, reach a
# feature, whatever later days the same run read (another cohort's window, this cohort's label period).
# "Popular": fewer than POPULAR_TOP_SHARE of the cards with a stats row that day had more impressions.
POPULAR_TOP_SHARE = 0.10

CONTENT_STATS_CTES = """
stats_days AS (SELECT unnest($stats_dts) AS dt),
card_day AS (
    SELECT mlog_id, dt, user_impression_count AS day_impressions, user_click_count AS day_clicks,
           cume_dist() OVER (PARTITION BY dt ORDER BY user_impression_count) > $popular_cume_dist AS popular
    FROM read_parquet($mlog_stats_paths, hive_partitioning = false)
),
creator_day AS (
    SELECT creator_id, dt, publish_mlog_count AS day_published
    FROM read_parquet($creator_stats_paths, hive_partitioning = false)
),
seen_cards AS (SELECT DISTINCT mlog_id FROM read_parquet($impression_paths, hive_partitioning = false)),
seen_creators AS (
    SELECT DISTINCT m.creator_id FROM read_parquet($cards_path, hive_partitioning = false) m JOIN seen_cards USING (mlog_id)
),"""
# With the statistics, the cards and creators they name join the integer keys too.
STATS_CARDS = " UNION SELECT mlog_id FROM card_day"
STATS_CREATORS = "UNION SELECT creator_id FROM creator_day"

# The panels are keyed by the integer card and creator numbers: four joins of every impression on one
# integer and a day cost less than on the IDs' text. They hold only the cards the built cohorts' impressions
# show and those cards' creators (no other row of a panel meets an impression): one new cohort's users see
# about 40 % of the cards with statistics, and the panels' running sums were most of its KPI build.
CONTENT_STATS_PANELS = """
card_panel AS (
    SELECT *, run_impressions - coalesce(day_impressions, 0) AS impressions_before,
           run_clicks - coalesce(day_clicks, 0) AS clicks_before
    FROM (
        SELECT k.card_no, d.dt, s.day_impressions, s.day_clicks, s.popular,
               sum(coalesce(s.day_impressions, 0)) OVER w AS run_impressions,
               sum(coalesce(s.day_clicks, 0)) OVER w AS run_clicks
        FROM (SELECT DISTINCT mlog_id FROM card_day SEMI JOIN seen_cards USING (mlog_id)) JOIN card_keys k USING (mlog_id)
        CROSS JOIN stats_days d
        LEFT JOIN card_day s ON s.mlog_id = k.mlog_id AND s.dt = d.dt
        WINDOW w AS (PARTITION BY k.card_no ORDER BY d.dt)
    )
),
creator_panel AS (
    SELECT *, run_published - coalesce(day_published, 0) AS published_before
    FROM (
        SELECT k.creator_no, d.dt, s.day_published, sum(coalesce(s.day_published, 0)) OVER w AS run_published
        FROM (SELECT DISTINCT creator_id FROM creator_day SEMI JOIN seen_creators USING (creator_id))
        JOIN creator_keys k USING (creator_id) CROSS JOIN stats_days d
        LEFT JOIN creator_day s ON s.creator_id = k.creator_id AND s.dt = d.dt
        WINDOW w AS (PARTITION BY k.creator_no ORDER BY d.dt)
    )
),"""

# cd/cf: the card's panel rows on the impression's day and on the user's first day; pd/pf: the creator's.
CONTENT_STATS_JOINS = """
    LEFT JOIN card_panel cd ON cd.card_no = c.card_no AND cd.dt = i.dt
    LEFT JOIN card_panel cf ON cf.card_no = c.card_no AND cf.dt = u.first_dt
    LEFT JOIN creator_panel pd ON pd.creator_no = c.creator_no AND pd.dt = i.dt
    LEFT JOIN creator_panel pf ON pf.creator_no = c.creator_no AND pf.dt = u.first_dt"""

# A creator known from the card table but without a creator_stats row on the days counts as publishing nothing
# (the real file leaves out most zero days); an impression whose card is unknown has no creator and is skipped.
_CREATOR_RATE = "ln(1 + coalesce(pd.run_published - pf.published_before, 0) / (i.dt - u.first_dt + 1))"
CONTENT_STATS_COLUMNS = f""",
        avg((cd.day_impressions IS NOT NULL)::INT) AS card_stats_coverage,
        {exact_avg("ln(1 + cd.day_impressions)")} AS mean_card_log_day_impressions,
        avg(cd.popular::INT) AS popular_card_share,
        {exact_avg("(cd.run_clicks - cf.clicks_before) / nullif(cd.run_impressions - cf.impressions_before, 0)")}
            AS mean_card_window_ctr,
        {exact_avg("ln(1 + cd.day_impressions)")} FILTER (WHERE i.is_click) AS clicked_card_mean_log_day_impressions,
        avg(i.dt - ($publish_anchor - c.publish_time)) FILTER (WHERE i.is_click) AS clicked_card_mean_age_days,
        {exact_avg(_CREATOR_RATE)} FILTER (WHERE c.creator_no IS NOT NULL) AS mean_creator_log_publish_rate,
        {exact_avg(_CREATOR_RATE)} FILTER (WHERE i.is_click AND c.creator_no IS NOT NULL) AS clicked_creator_log_publish_rate"""

# The columns CONTENT_STATS_COLUMNS adds, in table order (absent when use_content_stats is off).
CONTENT_STATS_FEATURES = (
    "card_stats_coverage", "mean_card_log_day_impressions", "popular_card_share", "mean_card_window_ctr",
    "clicked_card_mean_log_day_impressions", "clicked_card_mean_age_days", "mean_creator_log_publish_rate",
    "clicked_creator_log_publish_rate",
)
