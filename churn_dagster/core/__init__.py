"""Dagster wiring of the data graph: assets, checks, partitions, resources and jobs."""

import warnings

import dagster as dg

# Two beta parameters are used on purpose, with dagster pinned to one release in pyproject.toml:
# ``backfill_policy`` (single-run backfills) and ``allow_nonexistent_upstream_partitions`` (a cohort's window
# may start before the first day of data). Their warnings would fire once per asset at every import, in
# every CLI stage and code-server start; any other beta or preview warning still shows.
warnings.filterwarnings(
    "ignore",
    message=r"Parameter `(backfill_policy|allow_nonexistent_upstream_partitions)` .* is currently in beta",
    category=dg.BetaWarning,
)
