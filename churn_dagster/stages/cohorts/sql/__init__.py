"""The cohort SQL: daily activity and membership (:mod:`.cohorts`), label-period scores and splits
(:mod:`.labels`). No Dagster.
"""
