"""The case study's models without Dagster: four families, two variants, and their report tables.
"""
