"""Retrying a training step on a transient failure, and only on that: an MLflow server that does not answer
(restarting, say) is retried; every other error, an interruption included, ends the step."""

from collections.abc import Iterator

import dagster as dg

from churn_dagster.core.mlflow_resource import MlflowUnavailableError

MAX_RETRIES = 2


def retrying_transient_failures(context: dg.AssetExecutionContext, delay_seconds: float, train, *args) -> Iterator:
    """``train(context, *args)``; an unreachable MLflow server (restarting, say) is retried twice, ``delay_seconds``
    (``CHURN_TRAINING_RETRY_DELAY_SECONDS``, a minute by default) and then twice that apart. Only that error: a ``dg.RetryPolicy`` would retry every exception, and Dagster counts
    an interruption as one, so Ctrl-C or SIGTERM would restart the training instead of stopping it."""
    try:
        yield from train(context, *args)
    except MlflowUnavailableError as exc:
        delay = delay_seconds * (context.retry_number + 1)
        raise dg.RetryRequested(max_retries=MAX_RETRIES, seconds_to_wait=delay) from exc
