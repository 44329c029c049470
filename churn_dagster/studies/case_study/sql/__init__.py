"""The case study's features and labels in DuckDB (:mod:`.data`). No Dagster.
"""
