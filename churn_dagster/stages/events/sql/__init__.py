"""SQL of the event-log stage: time rules, the column mapping, the canonical load, cohorts and sequences."""
