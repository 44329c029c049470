"""The checked settings of one event-log instance, and where it keeps its files: what the component's YAML
resolves to, as the stage and the study take it. Every value is checked here, with one line per problem
naming the YAML key; :meth:`EventLogSpec.check_source` opens the source and checks the mapping against it.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from churn_dagster.errors import UserError
from churn_dagster.stages.events.sql.cohorts import GRAINS, Windows
from churn_dagster.stages.events.sql.mapping import EventMapping
from churn_dagster.stages.events.sql.sources import (
    FileSource,
    PostgresSource,
    SourceError,
)
from churn_dagster.stages.events.sql.times import TIME_FORMATS, TimeRule, is_pattern, pattern_problem
from churn_dagster.stages.events.sql.users import UsersMapping
from churn_dagster.studies.case_study.sql.event_logs import CaseStudyWindows
from churn_dagster.studies.trends.sql.event_logs import TrendWindows

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SAMPLE_ROWS = 10_000


class EventLogConfigError(UserError, ValueError):
    """A ``defs.yaml`` of the event-log component that cannot work; one line naming the key to change."""

    exit_code = 2


@dataclass(frozen=True)
class EventLogSpec:
    """An instance's settings as the stage and the study take them (``where``: its defs.yaml, for messages)."""

    name: str
    source: FileSource | PostgresSource
    mapping: EventMapping
    windows: Windows
    end: date | None
    max_quarantine_share: float
    scores_table: object  # the YAML's ScoresSinkModel (uri, table), or None
    max_epochs: int | None
    torch_threads: int
    where: str
    users: tuple | None = None  # (source, UsersMapping) when the YAML names a users table
    studies: tuple[str, ...] = ("churn",)
    case_study: CaseStudyWindows | None = None
    continuation_per_user: int = 20
    trends: TrendWindows | None = None

    def fail(self, line: str) -> EventLogConfigError:
        return EventLogConfigError(f"{self.where}: {line}")

    @classmethod
    def from_component(cls, c, base: Path, where: str) -> EventLogSpec:
        def fail(line: str):
            raise EventLogConfigError(f"{where}: {line}")

        if not NAME.match(c.name):
            fail(f"name: {c.name!r} must be lower-case letters, digits and _, starting with a letter (at most 40)")
        m = c.mapping
        if is_pattern(m.time_format):
            if problem := pattern_problem(m.time_format):
                fail(f"mapping.time_format: {m.time_format!r} is not a strptime pattern DuckDB reads ({problem})")
        elif m.time_format not in TIME_FORMATS:
            fail(f"mapping.time_format: {m.time_format!r} is not one of {', '.join(TIME_FORMATS)} nor a strptime "
                 "pattern (e.g. '%m/%d/%Y %H:%M')")
        try:
            zoneinfo.ZoneInfo(m.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            fail(f"mapping.timezone: {m.timezone!r} is not an IANA time zone (e.g. Europe/Berlin, UTC)")
        w = c.windows
        days = {}
        for key in ("start", "end"):
            text = getattr(w, key)
            if text is None:
                continue
            try:
                days[key] = date.fromisoformat(str(text))
            except ValueError:
                fail(f"windows.{key}: {text!r} is not a day (YYYY-MM-DD)")
        for key, low, high in (("observation_days", 1, 366), ("label_days", 1, 366), ("training_cohorts", 1, 104)):
            if not low <= getattr(w, key) <= high:
                fail(f"windows.{key}: {getattr(w, key)} is outside {low}..{high}")
        if w.grain not in GRAINS:
            fail(f"windows.grain: {w.grain!r} is not one of {', '.join(GRAINS)}")
        if "end" in days and days["end"] < days["start"]:
            fail(f"windows.end: {days['end']} is before windows.start {days['start']}")
        if not 0 <= c.max_quarantine_share <= 1:
            fail(f"max_quarantine_share: {c.max_quarantine_share} is outside 0..1")
        if c.max_epochs is not None and not 1 <= c.max_epochs <= 1000:
            fail(f"max_epochs: {c.max_epochs} is outside 1..1000")
        if not 1 <= c.torch_threads <= 256:
            fail(f"torch_threads: {c.torch_threads} is outside 1..256")
        if m.flags and m.event_type:
            fail("mapping.flags: give event_type or flags, not both (flags type the records of a log without "
                 "an event type column)")
        for key, texts in (("flags", list(m.flags)), ("unflagged_type", [m.unflagged_type])):
            if (bad := next((t for t in texts if not str(t).strip()), None)) is not None:
                fail(f"mapping.{key}: an event type must not be empty (got {bad!r})")
        case_study = _case_study(c, days["start"], fail)
        study_types = () if case_study is None else (("case_study.exposure", case_study.exposure),
                                                     ("case_study.response", case_study.response))
        mapping = EventMapping(m.user_id, m.event_time, TimeRule(m.time_format, m.timezone), m.event_type, m.item_id,
                               m.item_owner, m.value, m.session_id, m.event_id, tuple(c.activity_types),
                               dict(c.weights), tuple(m.flags.items()), m.unflagged_type.strip(),
                               tuple(m.null_values), study_types)
        windows = Windows(days["start"], w.observation_days, w.label_days, w.grain, w.training_cohorts)
        users = None if c.users is None else (
            _source(c.users.source, base, lambda line: fail(f"users.{line}")),
            UsersMapping(c.users.user_id, c.users.signup_time, mapping.time, tuple(c.users.attributes)))
        per_user = 20 if c.continuation is None else c.continuation.max_examples_per_user
        if c.continuation is not None and "continuation" not in c.studies:
            fail("continuation: given, but studies does not name continuation (studies: [churn, continuation])")
        if not 1 <= per_user <= 100_000:
            fail(f"continuation.max_examples_per_user: {per_user} is outside 1..100000")
        return cls(c.name, _source(c.source, base, fail), mapping, windows, days.get("end"), c.max_quarantine_share,
                   c.scores_table, c.max_epochs, c.torch_threads, where, users, tuple(dict.fromkeys(c.studies)),
                   case_study, per_user, _trends(c, windows, fail))

    def check_source(self) -> None:
        """Open the source and check the mapping against its columns and a sample of its rows."""
        from churn_dagster.stages.events.load import event_types, sample
        from churn_dagster.storage.duck import DuckSettings, connect

        con = connect(DuckSettings(memory_limit="1GB", threads=1))
        try:
            columns = self.source.columns()
            if missing := self.mapping.missing_columns(columns):  # before reading rows by those names
                raise self.fail(missing[0])
            rows = sample(con, self.source, self.mapping, SAMPLE_ROWS)
            types = self.mapping.fixed_types()
            if self.mapping.event_type:
                types = {t.strip() for t in rows.get("event_type", []) if t and t.strip()}
                named = {t for ts in self.mapping.named_types().values() for t in ts}
                if named - types:  # a type missing from the sample: look at the whole source before failing
                    types = event_types(con, self.source, self.mapping)
            problems = self.mapping.problems(columns, rows, rows["_time_reasons"], types)
            if not problems and self.trends is not None and self.mapping.event_type and len(types) < 2:
                types = event_types(con, self.source, self.mapping)  # the sample may hold one type only
                if len(types) < 2:
                    problems = [f"studies: trends mines intents from the mix of event types; mapping.event_type "
                                f"({self.mapping.event_type}) holds {len(types)} type(s) {sorted(types)[:3]}"]
        except SourceError as exc:
            raise self.fail(str(exc)) from exc
        except UserError as exc:
            raise self.fail(str(exc)) from exc
        finally:
            con.close()
        if not problems and self.users is not None:
            try:
                problems = self.users[1].problems(self.users[0].columns())
            except SourceError as exc:
                raise self.fail(f"users.{exc}") from exc
        if problems:
            raise self.fail(problems[0] + (f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""))


def _case_study(c, start: date, fail) -> CaseStudyWindows | None:
    """The case study's settings when ``studies`` names it (its block is then required)."""
    if not c.studies:
        fail("studies: name at least one of churn, case_study, continuation, trends")
    if c.scores_table is not None and "churn" not in c.studies:
        fail("scores_table: the churn study writes the scores; name churn in studies (studies: [churn, case_study])")
    if "case_study" not in c.studies:
        if c.case_study is not None:
            fail("case_study: given, but studies does not name case_study (studies: [churn, case_study])")
        return None
    cs = c.case_study
    if cs is None:
        fail("case_study: missing; studies names case_study, so give its response event types "
             "(case_study: {response: [click]})")
    for key in ("feature_days", "target_days"):
        if not 1 <= getattr(cs, key) <= 366:
            fail(f"case_study.{key}: {getattr(cs, key)} is outside 1..366")
    for key in ("exposure", "response"):
        types = getattr(cs, key)
        if not types or any(not str(t).strip() for t in types):
            fail(f"case_study.{key}: give one or more event types, none of them empty (got {types!r})")
    if "*" in cs.response:
        fail("case_study.response: * (every event) is for exposure only; name the response types")
    return CaseStudyWindows(start, tuple(t.strip() for t in cs.exposure), tuple(t.strip() for t in cs.response),
                            cs.feature_days, cs.target_days)


def _trends(c, windows: Windows, fail) -> TrendWindows | None:
    """The trend study's periods when ``studies`` names it; it needs event types (the intents' vocabulary)."""
    if "trends" not in c.studies:
        if c.trends is not None:
            fail("trends: given, but studies does not name trends (studies: [churn, trends])")
        return None
    if not c.mapping.event_type and not c.mapping.flags:
        fail("studies: trends needs event types (its intents are mixes of them): map mapping.event_type or flags")
    t = c.trends
    first = windows.observation_days if t is None or t.first_period_days is None else t.first_period_days
    second = windows.label_days if t is None or t.second_period_days is None else t.second_period_days
    for key, days in (("first_period_days", first), ("second_period_days", second)):
        if not 1 <= days <= 366:
            fail(f"trends.{key}: {days} is outside 1..366")
    return TrendWindows(windows.start, first, second, windows.grain, True if t is None else t.median_filter)


def _source(model, base: Path, fail):
    if model.postgres is not None:
        if model.paths:
            fail("source: give paths or postgres, not both")
        pg = model.postgres
        if bool(pg.table) == bool(pg.query):
            fail("source.postgres: give exactly one of table and query")
        return PostgresSource(pg.uri, pg.table, pg.query)
    if not model.paths:
        fail("source.paths: no file or folder given (or give source.postgres)")
    paths = tuple((base / p) if not Path(p).is_absolute() else Path(p) for p in model.paths)
    fmt = model.format
    if fmt is None:
        first = paths[0]
        fmt = "parquet" if first.name.lower().endswith(".parquet") or (
            first.is_dir() and any(first.rglob("*.parquet"))) else "csv"
    if not 1 <= len(model.delimiter) <= 4 or any(c in model.delimiter for c in '"\r\n'):
        fail(f"source.delimiter: {model.delimiter!r} must be one to four characters, without a quote or a newline")
    if model.columns:
        if fmt != "csv":
            fail("source.columns: only for CSV files without a header line (Parquet files name their columns)")
        if len(set(model.columns)) != len(model.columns) or not all(c.strip() for c in model.columns):
            fail(f"source.columns: {model.columns} must be distinct, non-empty names")
    return FileSource(paths, fmt, model.delimiter, tuple(model.columns), model.encoding, model.quote != "none")


class InstancePaths:
    """Where an instance keeps its files, under the data directory."""

    def __init__(self, data_dir: str | Path, name: str):
        self.root = Path(data_dir) / "event_logs" / name

    @property
    def events(self) -> Path:
        return self.root / "events.parquet"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine.parquet"

    @property
    def users(self) -> Path:
        return self.root / "users.parquet"

    @property
    def users_quarantine(self) -> Path:
        return self.root / "users_quarantine.parquet"

    def cohort(self, cohort: date) -> Path:
        return self.root / "cohorts" / cohort.isoformat()

    def model(self, family: str, cohort: date) -> Path:
        return self.root / "models" / family / cohort.isoformat()

    def report(self, cohort: date) -> Path:
        return self.root / "reports" / cohort.isoformat()

    def scores(self, cohort: date) -> Path:
        return self.root / "scores" / f"{cohort.isoformat()}.parquet"
