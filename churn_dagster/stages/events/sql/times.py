"""How an event-log time column becomes an instant (UTC milliseconds) and a local day, in SQL.

Four spellings are accepted (``time_format``): seconds or milliseconds since 1970 (``epoch_s``,
``epoch_ms``; seconds may carry a fraction); ISO 8601 (``iso``): a date, a date and a clock time, with or
without an offset (``Z``, ``UTC``, ``+02``, ``+0200``, ``+02:00``, after a space or not); and any other
spelling as a strptime pattern (``%m/%d/%Y %H:%M`` for ``12/1/2010 8:26``, ``%Y%m%d`` for ``20150101``),
read by DuckDB's ``strptime``, whose ``%z`` and ``%Z`` read an offset or a zone name. A time without an
offset is a wall-clock time in the log's declared ``timezone``. Two wall-clock times need a rule, because a daylight-saving change makes
them ambiguous: a time inside the hour skipped in spring does not exist and is quarantined ("local time
skipped by a clock change"); a time inside the hour repeated in autumn is read as its first occurrence (the
earlier instant), the reading a logger that writes local time produces for the first pass.

Every rule here is one SQL expression over a text column, so the same rule serves CSV, Parquet and
PostgreSQL sources and quarantines a row with the reason it gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

TIME_FORMATS = ("epoch_s", "epoch_ms", "iso")
# Times outside these years are quarantined: they are almost always a wrong unit (milliseconds read as
# seconds land in the year 50,000) or a placeholder (0, 1900-01-01).
FIRST_YEAR, LAST_YEAR = 1990, 2100
# 1990-01-01 and 2100-01-01 in seconds since 1970.
_EPOCH_S = (631152000, 4102444800)
_NUMBER = r"^-?[0-9]+(\.[0-9]+)?$"
_ISO = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?$"
# An offset only after a clock time, so the day of a plain date is never read as one.
_OFFSET = r" ?(Z|UTC|[+-][0-9]{2}(:?[0-9]{2})?)$"
_ISO_WITH_OFFSET = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?" + _OFFSET
SKIPPED_BY_CLOCK_CHANGE = "local time skipped by a clock change"


def sql_text(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def is_pattern(time_format: str) -> bool:
    """Whether ``time_format`` is a strptime pattern rather than one of :data:`TIME_FORMATS`."""
    return "%" in time_format


def pattern_problem(pattern: str) -> str | None:
    """Why DuckDB's strptime refuses ``pattern`` (an unknown ``%`` code), or None when it accepts it."""
    try:
        duckdb.connect().execute("SELECT try_strptime('', $p)", {"p": pattern})
    except duckdb.Error as exc:
        return str(exc).splitlines()[0].split(f"{pattern}: ", 1)[-1]  # e.g. "Unrecognized format ...: %Q"
    return None


@dataclass(frozen=True)
class TimeRule:
    """The time column's spelling and, for wall-clock times, the time zone they are in."""

    time_format: str = "iso"
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not (self.time_format in TIME_FORMATS or is_pattern(self.time_format)):
            raise ValueError(f"time_format must be one of {', '.join(TIME_FORMATS)} or a strptime pattern "
                             f"(e.g. %m/%d/%Y %H:%M), got {self.time_format!r}")

    @property
    def _zoned_pattern(self) -> bool:
        """A pattern whose values carry their own offset or zone name (``%z``, ``%Z``)."""
        return is_pattern(self.time_format) and ("%z" in self.time_format or "%Z" in self.time_format)

    def _local(self, col: str) -> str:
        """The wall-clock reading of a value without an offset, as a TIMESTAMP (NULL for epoch formats)."""
        if is_pattern(self.time_format):
            return f"try_strptime({col}, {sql_text(self.time_format)})"
        return f"try_cast({col} AS TIMESTAMP)" if self.time_format == "iso" else "NULL::TIMESTAMP"

    def _naive(self, local: str) -> str:
        """The instant of a wall-clock time ``local``: DuckDB's reading, moved one hour back when that earlier
        instant shows the same wall-clock time (the first pass of a repeated hour)."""
        tz = sql_text(self.timezone)
        instant = f"timezone({tz}, {local})"
        earlier = f"({instant} - INTERVAL 1 HOUR)"
        return f"CASE WHEN timezone({tz}, {earlier}) = {local} THEN {earlier} ELSE {instant} END"

    def _instant(self, col: str, local: str) -> str:
        """The instant of the text column ``col``, given ``local``, its wall-clock reading (an expression or a
        column that holds :meth:`_local`)."""
        if self._zoned_pattern:
            return f"try_strptime({col}, {sql_text(self.time_format)})"
        if is_pattern(self.time_format):
            return self._naive(local)
        if self.time_format != "iso":  # range-checked before conversion: a huge number would not convert
            number = self._epoch_number(col)
            return (f"CASE WHEN {number} BETWEEN {_EPOCH_S[0] * 1000} AND {_EPOCH_S[1] * 1000} "
                    f"THEN epoch_ms(({number})::BIGINT) END")
        # DuckDB casts an offset written right after the time: a space before it is dropped, Z and UTC are +00.
        offset = f"regexp_replace({col}, '{_OFFSET}', '\\1')"
        spelled = f"regexp_replace({offset}, '(Z|UTC)$', '+00')"
        return (f"CASE WHEN regexp_matches({col}, '{_ISO_WITH_OFFSET}') THEN try_cast({spelled} AS TIMESTAMPTZ) "
                f"ELSE {self._naive(local)} END")

    def _epoch_number(self, col: str) -> str:
        """The epoch value in milliseconds (seconds keep their millisecond fraction, rounded)."""
        if self.time_format == "epoch_s":
            return f"round(try_cast({col} AS DOUBLE) * 1000)"
        return f"try_cast({col} AS HUGEINT)"

    def instant_ms(self, col: str) -> str:
        """UTC milliseconds since 1970 of a text column that :meth:`reason` accepts."""
        return f"epoch_ms({self._instant(col, self._local(col))})"

    def local_timestamp(self, instant_ms: str) -> str:
        """The wall-clock time in the log's zone of a UTC millisecond instant: its local day and hour."""
        return f"timezone({sql_text(self.timezone)}, timezone('UTC', epoch_ms({instant_ms})))"

    def reason(self, col: str) -> str:
        """Why a value of the text column is not a time under this rule (NULL when it is one)."""
        local = self._local(col)
        return self._reason(col, local, self._instant(col, local))

    def timed(self, relation: str, col: str) -> str:
        """``relation`` as a subquery with the text column ``col`` read once per row: ``_t_reason`` (as
        :meth:`reason`) and ``_t_ms`` (as :meth:`instant_ms`, for a row without a reason). The expressions
        above repeat the wall-clock reading and the instant several times; here each is a column, computed
        once, which more than halves the cost of judging a log's times."""
        return (f"(SELECT *, {self._reason(col, '_t_local', '_t_instant')} AS _t_reason, epoch_ms(_t_instant) AS _t_ms "
                f"FROM (SELECT *, {self._instant(col, '_t_local')} AS _t_instant "
                f"FROM (SELECT *, {self._local(col)} AS _t_local FROM {relation})))")

    def _reason(self, col: str, local: str, instant: str) -> str:
        year = f"year(timezone('UTC', {instant}))"
        if self.time_format == "iso":
            shape = (f"NOT (regexp_matches({col}, '{_ISO}') OR regexp_matches({col}, '{_ISO_WITH_OFFSET}'))",
                     "not an ISO 8601 time (expected e.g. 2024-03-10, 2024-03-10 14:05:00 or 2024-03-10T14:05:00+01:00)")
        elif is_pattern(self.time_format):
            shape = (f"{instant if self._zoned_pattern else local} IS NULL",
                     f"does not match time_format {self.time_format} (or is not a calendar time)")
        else:
            unit = "seconds" if self.time_format == "epoch_s" else "milliseconds"
            pattern = _NUMBER if self.time_format == "epoch_s" else "^-?[0-9]+$"
            shape = (f"NOT regexp_matches({col}, '{pattern}')", f"not a number of {unit} since 1970")
        tz = sql_text(self.timezone)
        # For a value without an offset the instant is the wall-clock reading's (_naive); a reading the
        # instant does not give back never happened there.
        offset_free = "true" if is_pattern(self.time_format) else f"NOT regexp_matches({col}, '{_ISO_WITH_OFFSET}')"
        skipped = f"{offset_free} AND timezone({tz}, {instant}) <> {local}"
        hint = {"epoch_s": "; is it in milliseconds (time_format: epoch_ms)?",
                "epoch_ms": "; is it in seconds (time_format: epoch_s)?"}.get(self.time_format, "")
        checks = [
            (f"{col} IS NULL OR trim({col}) = ''", "empty"),
            shape,
        ]
        if self.time_format == "iso":
            checks.append((f"{instant} IS NULL", "not a valid calendar time"))
        if self.time_format == "iso" or (is_pattern(self.time_format) and not self._zoned_pattern):
            checks.append((skipped, f"{SKIPPED_BY_CLOCK_CHANGE} in {self.timezone}"))
        checks.append((f"{instant} IS NULL OR {year} NOT BETWEEN {FIRST_YEAR} AND {LAST_YEAR}",
                       f"outside the years {FIRST_YEAR}..{LAST_YEAR}{hint}"))
        whens = " ".join(f"WHEN {cond} THEN {sql_text(why)}" for cond, why in checks)
        return f"CASE {whens} END"
