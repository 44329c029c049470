"""The shared data graph, one package per stage: ``ingest``, ``cohorts``, ``features``, ``tensors``.

Each stage's modules at the package level are its Dagster wiring (assets and their checks); its ``sql/``
(DuckDB over Parquet) and ``ml/`` (readers for training) hold the work, without Dagster. Every study reads
these stages; none of them knows a study.
"""
