"""The churn study's model code without Dagster: the two protocols (:mod:`.experiments`), the report's
tables (:mod:`.report`), explanations (:mod:`.explain`) and scoring (:mod:`.scoring`).
"""
