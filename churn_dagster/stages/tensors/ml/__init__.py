"""Reading the tensors for training: memory-mapped datasets, padding per batch, normalisation fit on
training rows. No Dagster.
"""
