"""Cohorts: who is first seen on each day (membership), the train/validation/test split, and the
label-period scores. Wiring: :mod:`.membership`, :mod:`.labels`; SQL: :mod:`.sql`.
"""
