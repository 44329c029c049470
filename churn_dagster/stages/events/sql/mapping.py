"""The column mapping of an event log: which source column holds each field of the event-log contract
(``docs/EVENT_LOGS.md``), and the checks that catch a wrong mapping before any run.

A mapping is checked against what the source says about itself, its column names and a sample of its
values, so that ``dg check defs`` rejects a missing column, a value column that holds text, a time column
that does not parse under the declared format, or an activity type or weight naming an event type the log
does not have; each problem is one line naming the YAML key, the column and an example value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from churn_dagster.stages.events.sql.times import TimeRule

# Optional fields of the contract, in the order the canonical table holds them.
OPTIONAL_FIELDS = ("event_type", "item_id", "item_owner", "value", "session_id", "event_id")
# The event type of every row of a log without an event_type column.
DEFAULT_EVENT_TYPE = "event"
# The largest engagement weight of an event type: label-period weights are summed exactly (storage.duck.exact_sum,
# 20 integer digits), which ten million events of one user at this weight still fit.
MAX_WEIGHT = 1e6


@dataclass(frozen=True)
class EventMapping:
    """Source column of each contract field (None: the log does not have it), the time rule, which event
    types count as activity (empty: all) and the engagement weight of each type (absent: 1).

    ``event_id``, when the log has one, decides what a duplicate is: two records with the same id are one
    event delivered twice. Without it, two records equal in every mapped field are.

    ``flags`` serves logs with a row per exposure and a 0/1 column per response (an impression log with
    ``isClick`` and ``isLike``): (event type, column) pairs, deepest response first; a record's type is the
    first whose column holds 1, else ``unflagged_type``. ``null_values`` are the spellings of a missing
    value (``NA``, ``\\N``, ``NULL``), read as empty in every mapped column."""

    user_id: str
    event_time: str
    time: TimeRule = TimeRule()
    event_type: str | None = None
    item_id: str | None = None
    item_owner: str | None = None
    value: str | None = None
    session_id: str | None = None
    event_id: str | None = None
    activity_types: tuple[str, ...] = ()
    weights: Mapping[str, float] = field(default_factory=dict)
    flags: tuple[tuple[str, str], ...] = ()
    unflagged_type: str = DEFAULT_EVENT_TYPE
    null_values: tuple[str, ...] = ()
    study_types: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (YAML key, event types) a study names

    def columns(self) -> dict[str, str]:
        """Staged field -> source column, for the fields the log has (``flag_<k>`` for the k-th flag)."""
        found = {"user_id": self.user_id, "event_time": self.event_time}
        found.update({f: getattr(self, f) for f in OPTIONAL_FIELDS if getattr(self, f)})
        found.update({f"flag_{k}": column for k, (_, column) in enumerate(self.flags)})
        return found

    def yaml_key(self, staged: str) -> str:
        """The YAML key under ``mapping`` that names a staged field's column."""
        if staged.startswith("flag_"):
            return f"flags.{self.flags[int(staged.removeprefix('flag_'))][0]}"
        return staged

    def fixed_types(self) -> set[str] | None:
        """Every event type a flag-typed log can have, known without reading it; None for other logs."""
        return {*(t for t, _ in self.flags), self.unflagged_type} if self.flags else None

    def named_types(self) -> dict[str, tuple[str, ...]]:
        """Event types the mapping and the studies name, by the YAML key that names them."""
        return {"activity_types": tuple(self.activity_types), "weights": tuple(self.weights), **dict(self.study_types)}

    def weight_of(self, event_type: str) -> float:
        return float(self.weights.get(event_type, 1.0))

    def missing_columns(self, columns: Sequence[str]) -> list[str]:
        """A line for each mapped column the source does not have."""
        return [f"mapping.{self.yaml_key(key)}: column {column!r} is not in the source (its columns: "
                f"{', '.join(columns)})" for key, column in self.columns().items() if column not in columns]

    def problems(self, columns: Sequence[str], samples: Mapping[str, Sequence[str | None]],
                 time_reasons: Sequence[str | None], event_types: set[str] | None) -> list[str]:
        """Every problem of the mapping, one line each.

        ``columns``: the source's column names; ``samples``: contract field -> sampled text values of its
        column; ``time_reasons``: why each sampled time does not parse (None where it does); ``event_types``:
        every event type in the source (None when the log has no event_type column)."""
        found = self.missing_columns(columns)
        if found:
            return found
        times = list(samples.get("event_time", ()))
        if times and all(r is not None for r in time_reasons):
            k = next((k for k, t in enumerate(times) if t not in (None, "")), 0)
            found.append(f"mapping.event_time: column {self.event_time!r} holds no time under time_format "
                         f"{self.time.time_format} (e.g. {times[k]!r}: {time_reasons[k]})")
        values = [v for v in samples.get("value", ()) if v not in (None, "")]
        if self.value and values and not any(_is_number(v) for v in values):
            found.append(f"mapping.value: column {self.value!r} holds no number (e.g. {values[0]!r}); map a numeric column or drop the key")
        for k, (event_type, column) in enumerate(self.flags):
            flagged = [v for v in samples.get(f"flag_{k}", ()) if v not in (None, "")]
            if flagged and not any(v.strip() in ("0", "1") for v in flagged):
                found.append(f"mapping.flags.{event_type}: column {column!r} holds no 0 or 1 (e.g. {flagged[0]!r})")
        users = [v for v in samples.get("user_id", ()) if v not in (None, "")]
        if samples.get("user_id") and not users:
            found.append(f"mapping.user_id: column {self.user_id!r} is empty in every sampled row")
        if event_types is None:
            by_key = {k: set(ts) - {DEFAULT_EVENT_TYPE, "*"} for k, ts in self.named_types().items()}
            if named := set().union(*by_key.values()):
                keys = " and ".join(k for k, ts in by_key.items() if ts)
                found.append(f"mapping.event_type is not set, so every event has type {DEFAULT_EVENT_TYPE!r}; "
                             f"{keys} cannot name {', '.join(sorted(named))}")
            return found
        for key, types in self.named_types().items():
            unknown = [t for t in types if t not in event_types and t != "*"]
            if unknown:
                shown = ", ".join(sorted(event_types)[:12]) + (" ..." if len(event_types) > 12 else "")
                where = f"column {self.event_type!r}" if self.event_type else "the log"
                found.append(f"{key}: event type {unknown[0]!r} does not occur in {where} (its types: {shown})")
        for event_type, weight in self.weights.items():
            if not (isinstance(weight, (int, float)) and 0 <= weight <= MAX_WEIGHT):
                found.append(f"weights.{event_type}: {weight!r} is not a number from 0 to {MAX_WEIGHT:g}")
        return found


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
