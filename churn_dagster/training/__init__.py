"""The training kit every study uses: run config from hyperparameter dataclasses, retries of transient
failures, the training step's context, MLflow logging, the registry and the champion rule. Its ``ml/``
holds the Dagster-free parts: the training loop, metrics, the evidence rule, the champion comparison,
the classical models and the shared networks.
"""
