"""Churn and 5-level engagement (the Guo 2025 thesis): logistic regression, XGBoost, LSTM and hybrid
LSTM for both targets (:mod:`.models`, :mod:`.training`), the evaluation report (:mod:`.report`) and the
per-user risk scores of the latest window (:mod:`.scoring_window`, :mod:`.risk_scores`).
"""
