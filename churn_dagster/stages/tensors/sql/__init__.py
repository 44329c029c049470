"""Writing the per-cohort session tensors (DuckDB, numpy memory maps). No Dagster.
"""
