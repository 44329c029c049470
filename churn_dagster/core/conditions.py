"""When a cohort's data is due: as soon as every day it reads has landed.

The cohort assets (membership, split, labels, sessions, features, tensors) carry :data:`cohort_ready`, and
``cohort_automation`` evaluates it every minute. A cohort partition is requested once every upstream
partition its mappings name exists: membership and the split (a hash of the user id) on the cohort day,
sessions, features and the continuation examples when the 14 days of the observation window have landed,
labels and tensors when the 7 label days have (the cohort becomes trainable the day its label period has
landed); and again when any of them is
re-materialized (a re-delivered day, a reloaded snapshot). Upstream partitions requested in the same tick
count as present, so one tick requests a cohort's whole chain. A partition whose last run failed waits for
new upstream data or a person, rather than being retried every minute. Unlike ``AutomationCondition.eager()`` this is
not limited to the latest partition: the cohort partitions are a fixed calendar, and the cohort that is due
is the one whose label days just landed, not the last one.
"""

import dagster as dg

cohort_ready = (
    (
        (dg.AutomationCondition.missing() & ~dg.AutomationCondition.execution_failed())
        | dg.AutomationCondition.any_deps_updated().since_last_handled()
    )
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("every day it reads has landed")
