"""The feature SQL: sessions by the 30-minute rule (:mod:`.sessions`), static and KPI features
(:mod:`.features`). No Dagster.
"""
