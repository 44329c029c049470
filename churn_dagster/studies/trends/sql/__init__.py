"""The trend study's SQL: labels and windows (:mod:`.trends`), session events (:mod:`.session_events`)
and the period-1 model inputs (:mod:`.inputs`). No Dagster.
"""
