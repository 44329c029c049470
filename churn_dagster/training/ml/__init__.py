"""The Dagster-free half of the training kit: PyTorch, scikit-learn and XGBoost code that every study
shares, runnable and testable on its own.
"""
