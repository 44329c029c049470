"""The NCM case study (2021) as its own asset group, ``case_study``: active users from their first ten days.

``case_study_features`` and ``case_study_labels`` (DuckDB over ``user_day_activity``), four models in two
variants each (``case_study_svm``, ``case_study_naive_bayes``, ``case_study_decision_tree``, ``case_study_mlp``)
and ``case_study_report``; ``case_study_job`` materializes them all.
"""

from churn_dagster.studies.case_study.data import case_study_features, case_study_labels
from churn_dagster.studies.case_study.models import case_study_models
from churn_dagster.studies.case_study.report import case_study_report

case_study_assets = [case_study_features, case_study_labels, *case_study_models, case_study_report]
