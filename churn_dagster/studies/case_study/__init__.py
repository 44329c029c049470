"""The NCM case study (2021) as its own asset group, ``case_study``: active users from their first ten days.

``case_study_features`` and ``case_study_labels`` (DuckDB over ``user_day_activity``), four models in two
variants each (``case_study_svm``, ``case_study_naive_bayes``, ``case_study_decision_tree``, ``case_study_mlp``)
and ``case_study_report``; ``case_study_job`` materializes them all.
"""
