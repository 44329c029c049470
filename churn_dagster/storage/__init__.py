"""The lake's folder layout (:mod:`.lake`) and the DuckDB connection every SQL stage runs on (:mod:`.duck`):
memory limit, spill folder, literal paths, atomic writes. No Dagster.
"""
