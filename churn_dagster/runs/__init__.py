"""Running the code location's jobs from the ``churn-dagster`` command: the runner and what its runs mean."""
