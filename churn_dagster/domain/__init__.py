"""Facts of the study that every layer shares: the data calendar, the published file format, the engagement
levels and the delivery contract of the landing folder.

Everything else imports these downward: the shared stages, the training kit and the studies (their SQL and
models and their Dagster wiring), ``storage/`` and ``synth/`` (the synthetic twin). Nothing here imports
Dagster or any of those packages.
"""
