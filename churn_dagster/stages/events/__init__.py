"""Any platform's own event log: read from files or PostgreSQL, every row loaded or quarantined, and turned
into the cohorts, features, labels and daily sequences the churn study trains on (``docs/EVENT_LOGS.md``)."""
