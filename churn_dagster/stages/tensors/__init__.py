"""Sequence tensors per cohort: built by :mod:`.sequences` (wiring) with :mod:`.sql.tensors`, read for
training by :mod:`.ml.data`.
"""
