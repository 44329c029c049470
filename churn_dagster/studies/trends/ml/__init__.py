"""The trend study's models without Dagster: LDA intents, DIGMN and its baselines, the experiments and
the report.
"""
