"""The continuation SQL: requests, examples and labels (:mod:`.examples`) and the checks that recount
them (:mod:`.checks`). No Dagster.
"""
