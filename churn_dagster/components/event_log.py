"""The event-log component: one ``defs.yaml`` turns a platform's own activity log (CSV or Parquet files, or a
PostgreSQL table or query) into the churn study's data graph, models, report and risk scores, and, where
``studies`` names them, the case study, session continuation and the engagement trends (DIGMN).

Its YAML is checked when the definitions load, so ``dg check defs`` rejects a bad mapping before any run:
the source is opened, its columns listed and a sample of its rows read, and every problem (a missing
column, a value column of text, a time column that does not parse, an event type the log does not have, a
window out of range) is one line naming the YAML key, the column and an example value. Several instances
can live in one code location; each name is their key prefix, group and registry prefix.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from churn_dagster.components.event_log_assets import event_log_definitions
from churn_dagster.components.event_log_presets import preset_fields
from churn_dagster.components.event_log_spec import EventLogConfigError, EventLogSpec


class PostgresModel(dg.Model, dg.Resolvable):
    uri: str = Field(description="libpq URI, e.g. postgresql://user:{{ env('PGPASSWORD') }}@127.0.0.1:5432/db")
    table: str | None = Field(default=None, description="schema.table to read")
    query: str | None = Field(default=None, description="or a SELECT to read instead of a table")


class SourceModel(dg.Model, dg.Resolvable):
    paths: list[str] = Field(default_factory=list, description="CSV or Parquet files or folders, read literally")
    format: Literal["csv", "parquet"] | None = Field(default=None, description="default: from the first file's suffix")
    delimiter: str = Field(default=",", description="CSV field delimiter: one to four characters (\\t, ::)")
    columns: list[str] = Field(default_factory=list, description="names of the columns of CSV files without a "
                               "header line (every line is then a record)")
    encoding: Literal["utf-8", "latin-1"] = Field(default="utf-8", description="text encoding of CSV files")
    quote: Literal['"', "none"] = Field(default='"', description="the CSV quote character, or none: a quote is then "
                                        "an ordinary character (tab-separated dumps)")
    postgres: PostgresModel | None = Field(default=None, description="read a PostgreSQL table or query instead")


class MappingModel(dg.Model, dg.Resolvable):
    user_id: str
    event_time: str
    time_format: str = Field(default="iso", description="iso, epoch_s, epoch_ms, or a strptime pattern such as "
                             "'%m/%d/%Y %H:%M'")
    timezone: str = "UTC"
    event_type: str | None = None
    item_id: str | None = None
    item_owner: str | None = None
    value: str | None = None
    session_id: str | None = None
    event_id: str | None = None
    flags: dict[str, str] = Field(default_factory=dict, description="instead of event_type: event type -> 0/1 "
                                  "column, deepest response first; a record's type is the first flag set")
    unflagged_type: str = Field(default="event", description="the type of a record with no flag set")
    null_values: list[str] = Field(default_factory=list, description="spellings of a missing value: NA, \\N, NULL")


class WindowsModel(dg.Model, dg.Resolvable):
    start: str = Field(description="the first cohort's day (YYYY-MM-DD)")
    end: str | None = Field(default=None, description="the log's last day; default: open-ended (a live log)")
    observation_days: int = 14
    label_days: int = 14
    grain: Literal["day", "week"] = "day"
    training_cohorts: int = 4


class UsersModel(dg.Model, dg.Resolvable):
    source: SourceModel = Field(description="where the users table is: files or a PostgreSQL table, as for events")
    user_id: str
    signup_time: str | None = Field(default=None, description="read with the events' time_format and timezone")
    attributes: list[str] = Field(default_factory=list, description="columns fixed at signup: country, plan, ...")


class CaseStudyModel(dg.Model, dg.Resolvable):
    response: list[str] = Field(description="event types that count as responses: click, purchase, ...")
    exposure: list[str] = Field(default_factory=lambda: ["*"], description="event types that count as exposures "
                                "(the denominator of the response rate); * is every event")
    feature_days: int = Field(default=10, description="days from windows.start whose events are the features")
    target_days: int = Field(default=20, description="the days after them whose response rate is the target")


class ContinuationModel(dg.Model, dg.Resolvable):
    max_examples_per_user: int = Field(default=20, description="events of one user drawn as examples, at most")


class TrendsModel(dg.Model, dg.Resolvable):
    first_period_days: int | None = Field(default=None, description="days from a user's first event compared "
                                          "with the next period; default: windows.observation_days")
    second_period_days: int | None = Field(default=None, description="default: windows.label_days")
    median_filter: bool = Field(default=True, description="the paper's task: users with at least their cohort's "
                                "median number of first-period sessions")


class ScoresSinkModel(dg.Model, dg.Resolvable):
    uri: str = Field(description="libpq URI of the database the CRM reads")
    table: str = Field(default="churn_scores", description="schema.table; created when missing")


TEMPLATE = """\
type: churn_dagster.components.EventLogComponent
attributes:
  name: {name}                       # key prefix, group and registry prefix
  source:
    paths: [data/events/{name}.csv]  # CSV or Parquet files or folders, from the project root;
                                     # or postgres: {{uri: "postgresql://...", table: schema.table}}
    # delimiter: ","                 # 1 to 4 characters: "\\t", "::"
    # columns: [user, item, ts]      # for files without a header line; encoding: latin-1 for ISO-8859-1
  mapping:                           # your columns (docs/EVENT_LOGS.md, "The contract")
    user_id: user_id
    event_time: event_time
    time_format: iso                 # iso, epoch_s, epoch_ms or a pattern: "%m/%d/%Y %H:%M"
    timezone: UTC                    # the zone of times written without an offset
    # event_type: event_type
    # value: amount
    # item_id: item_id
    # session_id: session_id
    # event_id: event_id
  windows:
    start: "{start}"                 # the first cohort
    # end: "YYYY-MM-DD"              # the log's last day; leave out for a live log
    grain: week                      # day or week
    observation_days: 14
    label_days: 14
  # studies: [churn, case_study, continuation, trends]   # churn is the default; the case study needs:
  # case_study: {{exposure: [view], response: [click], feature_days: 10, target_days: 20}}
  # continuation: {{max_examples_per_user: 20}}
  # trends: {{first_period_days: 14, second_period_days: 14, median_filter: true}}   # needs event types
"""


class EventLogScaffolder(dg.Scaffolder):
    """``dg scaffold defs churn_dagster.components.EventLogComponent NAME``: a commented defs.yaml to fill in;
    ``dg check defs`` then names whatever still does not match the log."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        name = re.sub(r"[^a-z0-9_]+", "_", request.target_path.name.lower()).strip("_") or "events"
        name = name if name[0].isalpha() else f"log_{name}"
        request.target_path.mkdir(parents=True, exist_ok=True)
        (request.target_path / "defs.yaml").write_text(
            TEMPLATE.format(name=name[:40], start=date.today().replace(day=1).isoformat()))


@dg.scaffold_with(EventLogScaffolder)
class EventLogComponent(dg.Component, dg.Model, dg.Resolvable):
    """Churn and engagement-level models, the case study and session continuation on your own event log (see
    docs/EVENT_LOGS.md)."""

    name: str = Field(description="key prefix, group and registry prefix (lower-case letters, digits, _)")
    source: SourceModel
    preset: Literal["ncm"] | None = Field(default=None, description="a known log layout: ncm (the NetEase files "
                                          "or the synthetic twin; source.paths: their folder) fills in the mapping, "
                                          "the users table and default windows")
    mapping: MappingModel | None = None
    windows: WindowsModel | None = None
    activity_types: list[str] = Field(default_factory=list, description="event types that count as activity; "
                                                                         "default: all")
    weights: dict[str, float] = Field(default_factory=dict, description="engagement weight per event type")
    studies: list[Literal["churn", "case_study", "continuation", "trends"]] = Field(
        default_factory=lambda: ["churn"], description="churn: churn and level models per cohort; case_study: will "
        "a user's response rate rise above the mean; continuation: will a session go on 10, 20, 30 more minutes; "
        "trends: will active days and sessions per day fall, hold or rise (DIGMN)")
    case_study: CaseStudyModel | None = Field(default=None, description="the case study's event types and days")
    continuation: ContinuationModel | None = Field(default=None, description="the continuation study's sampling")
    trends: TrendsModel | None = Field(default=None, description="the trend study's periods and filter")
    max_quarantine_share: float = Field(default=0.01, description="the quarantine check fails above this share")
    users: UsersModel | None = None
    scores_table: ScoresSinkModel | None = None
    max_epochs: int | None = Field(default=None, description="cap on the sequence models' epochs")
    torch_threads: int = Field(default=1, description="CPU threads of a training step's torch")

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        spec = self.resolved(Path(context.project_root), Path(context.path) / "defs.yaml")
        spec.check_source()
        return event_log_definitions(spec)

    def resolved(self, root: Path, where: Path) -> EventLogSpec:
        """The plain settings of this instance, every value checked (one line per problem); relative source
        paths are read from the project ``root``, and messages start with ``where`` (the defs.yaml)."""
        return EventLogSpec.from_component(self._with_preset(root, str(where)), root, str(where))

    def _with_preset(self, root: Path, where: str) -> EventLogComponent:
        """This instance with what its preset fills in; without one, mapping and windows must be given."""
        if self.preset is None:
            for key in ("mapping", "windows"):
                if getattr(self, key) is None:
                    raise EventLogConfigError(f"{where}: {key}: missing (give it, or name a preset: ncm)")
            return self
        if self.mapping is not None:
            raise EventLogConfigError(f"{where}: mapping: leave it out with preset {self.preset} (the preset maps "
                                      "the columns)")
        if self.source.postgres is not None or len(self.source.paths) != 1:
            raise EventLogConfigError(f"{where}: source.paths: preset {self.preset} reads one folder, the one "
                                      "holding the published files")
        folder = Path(self.source.paths[0])
        fields = preset_fields(self.preset, folder if folder.is_absolute() else root / folder)
        users = fields["users"]
        return self.model_copy(update={
            "source": SourceModel(**fields["source"]), "mapping": MappingModel(**fields["mapping"]),
            "windows": self.windows or WindowsModel(**fields["windows"]),
            "users": self.users or UsersModel(source=SourceModel(**users["source"]), user_id=users["user_id"],
                                              attributes=users["attributes"])})
