"""The continuation models without Dagster: configuration, data and training.
"""
