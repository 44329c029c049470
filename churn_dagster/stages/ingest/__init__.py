"""Ingest: the published files (or a landing folder) to per-day Parquet and quarantine files, and the
daily activity table. Wiring: :mod:`.raw`, :mod:`.activity`, :mod:`.landing` (the sensor); work: :mod:`.sql`.
"""
