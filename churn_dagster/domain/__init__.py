"""Facts of the study that every layer shares: the data calendar, the published file format, the engagement
levels and the delivery contract of the landing folder.

Everything else imports these downward: ``transforms/`` (SQL), ``ml/`` (models), ``synth/`` (the synthetic
twin) and ``defs/`` (the Dagster wiring). Nothing here imports Dagster or any of those packages.
"""
