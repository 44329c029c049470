"""The four task families of the source papers, one package each: ``churn`` (churn and engagement level,
Guo 2025), ``trends`` (DIGMN, WSDM 2023), ``case_study`` (NCM case study 2021, active users) and
``continuation`` (Zooniverse, session continuation). A study holds its Dagster wiring at the package
level, its SQL in ``sql/`` and its models in ``ml/``; it reads the shared stages and the training kit and
never another study.
"""
