"""Dagster wiring of the data graph: assets, checks, partitions, resources and jobs."""
