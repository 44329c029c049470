"""Dagster components of churn_dagster, found by ``dg list components`` through the
``dagster_dg_cli.registry_modules`` entry point: :class:`EventLogComponent` builds the churn study's graph
on any platform's own event log, configured in a ``defs.yaml``."""

from churn_dagster.components.event_log import EventLogComponent

__all__ = ["EventLogComponent"]
