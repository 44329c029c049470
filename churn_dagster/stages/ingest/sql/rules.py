"""What makes a well-typed row of each NCM file acceptable, as SQL over the canonical column names.

These rules follow the format rules of :mod:`fields`: a required field given as the null token, a ``dt``
outside the data or disagreeing with the ``day=`` folder a row was delivered in, an ``impressTime`` on
another day than its ``dt``, a negative count, a swipe-down list that is not exactly as published, a card
type other than 1 or 2. Soft anomalies that do occur in the real log (an action flag on a non-clicked
row, about 0.06% of action rows) are kept and counted by the asset checks instead.

The swipe-down list (``detailMlogInfoList``) is a Python literal of dicts whose values are all strings;
with its single quotes turned into double quotes it is JSON. Each dict is read as a map so that an unknown
or missing key is seen (a struct would drop the one and fill the other with NULL); every value must be as
published (flags ``0``/``1``, integer position and log time, a view time of 0 to a day, a card ID of the ID grammar
of :mod:`churn_dagster.domain.ncm_format`).
"""

from __future__ import annotations

from dataclasses import dataclass

from churn_dagster.domain import ncm_format as fmt
from churn_dagster.stages.ingest.sql.fields import DECIMAL_PATTERN, Rule

_DETAIL_MAPS = (
    "CASE WHEN detail_list IS NOT NULL THEN "
    "TRY(from_json(replace(detail_list, '''', '\"'), '[\"MAP(VARCHAR, VARCHAR)\"]')) END"
)
_PUBLISHED_KEYS = "[" + ", ".join(f"'{k}'" for k in sorted(fmt.DETAIL_LIST_KEYS)) + "]"
_FLAG_KEYS = ("isZan", "isComment", "isIntoPersonalHomepage", "isShare", "isViewComment")


def _canonical_int(value: str, sql_type: str) -> str:
    return f"coalesce(CAST(TRY_CAST({value} AS {sql_type}) AS VARCHAR) = {value}, false)"


_ENTRY_VALUES_OK = " AND ".join([
    *(f"coalesce(m['{k}'] IN ('0', '1'), false)" for k in _FLAG_KEYS),
    _canonical_int("m['position']", "INTEGER"),
    _canonical_int("m['logtime']", "BIGINT"),
    f"coalesce(regexp_full_match(m['mlogViewTime'], '{DECIMAL_PATTERN}') "
    f"AND TRY_CAST(m['mlogViewTime'] AS DOUBLE) BETWEEN 0 AND {fmt.MAX_VIEW_TIME_S}, false)",
    f"coalesce(regexp_full_match(m['mlogId'], '(?:{fmt.ID_GRAMMAR.pattern})'), false)",
])
DETAIL_ITEMS_SQL = """list_transform(_detail_maps, lambda m: struct_pack(
    mlog_id := m['mlogId'],
    position := TRY_CAST(m['position'] AS INTEGER),
    view_time := TRY_CAST(m['mlogViewTime'] AS DOUBLE),
    logtime_ms := TRY_CAST(m['logtime'] AS BIGINT),
    is_like := m['isZan'] = '1',
    is_comment := m['isComment'] = '1',
    is_into_homepage := m['isIntoPersonalHomepage'] = '1',
    is_share := m['isShare'] = '1',
    is_view_comment := m['isViewComment'] = '1'
))"""
DETAIL_ITEMS_TYPE = (
    "STRUCT(mlog_id VARCHAR, position INTEGER, view_time DOUBLE, logtime_ms BIGINT, is_like BOOLEAN, "
    "is_comment BOOLEAN, is_into_homepage BOOLEAN, is_share BOOLEAN, is_view_comment BOOLEAN)[]"
)
_DETAIL_RULES = (
    Rule(
        "detail_list IS NOT NULL AND (_detail_maps IS NULL OR len(list_filter(_detail_maps, lambda m: m IS NULL)) > 0)",
        "detailMlogInfoList is not a list of dicts",
        "detailMlogInfoList",
    ),
    Rule(
        f"NOT coalesce(list_bool_and(list_transform(_detail_maps, lambda m: list_sort(map_keys(m)) = {_PUBLISHED_KEYS})), true)",
        "detailMlogInfoList has an entry with missing or unknown keys",
        "detailMlogInfoList",
    ),
    Rule(
        f"NOT coalesce(list_bool_and(list_transform(_detail_maps, lambda m: {_ENTRY_VALUES_OK})), true)",
        "detailMlogInfoList has an entry whose values are not as published",
        "detailMlogInfoList",
    ),
)
_LOCAL_EPOCH_DAY = f"((impress_time_ms // 1000 + {fmt.SHANGHAI_UTC_OFFSET_SECONDS}) // 86400)"
_DT_RANGE = Rule("dt NOT BETWEEN 1 AND $num_days", "dt is outside the days of the data", "dt")
DELIVERED_DAY_RULE = Rule("dt <> $delivered_dt", "dt disagrees with the day= folder the file was delivered in", "dt")


def _not_negative(spec: fmt.NcmFile, *names: str) -> tuple[Rule, ...]:
    return tuple(Rule(f"{n} < 0", f"{spec.column(n).source} is negative", spec.column(n).source) for n in names)


@dataclass(frozen=True)
class FileRules:
    """Per-file content rules: the natural key, the required columns, the ordered checks, and columns derived
    from the parsed ones (``derived``: SQL computed before the checks, ``stored``: kept in the table)."""

    key: tuple[str, ...]
    required: tuple[str, ...]
    checks: tuple[Rule, ...]
    derived: tuple[tuple[str, str], ...] = ()
    stored_derived: tuple[tuple[str, str], ...] = ()
    # Columns dropped from the stored table once the derived ones replace them.
    replaced: tuple[str, ...] = ()
    # Checks that a line of the fast path's strict shape cannot break (its stored derived columns are then
    # built by the fast path itself, :mod:`fast`): skipped on that path.
    shape_checks: tuple[Rule, ...] = ()

    def rules(self, spec: fmt.NcmFile) -> list[Rule]:
        missing = [Rule(f"{c} IS NULL", f"{spec.column(c).source} is missing", spec.column(c).source) for c in self.required]
        return [*missing, *self.checks]


_I, _MS, _CS = fmt.IMPRESSIONS, fmt.MLOG_STATS, fmt.CREATOR_STATS
_UD, _MD, _CD = fmt.USER_DEMOGRAPHICS, fmt.MLOG_DEMOGRAPHICS, fmt.CREATOR_DEMOGRAPHICS
RULES: dict[str, FileRules] = {
    _I.stem: FileRules(
        key=("user_id", "impress_time_ms", "impress_position", "mlog_id"),
        required=tuple(c.name for c in _I.columns if c.name not in ("detail_list", "mlog_view_time")),
        checks=(
            _DT_RANGE,
            Rule(f"{_LOCAL_EPOCH_DAY} <> $first_epoch_day + dt - 1", "impressTime is not on the Asia/Shanghai day dt",
                 "impressTime"),
            *_not_negative(_I, "impress_position", "mlog_view_time"),
            Rule(f"mlog_view_time > {fmt.MAX_VIEW_TIME_S}",
                 f"mlogViewTime is more than {fmt.MAX_VIEW_TIME_S:,} seconds (a day)", "mlogViewTime"),
            *_DETAIL_RULES,
        ),
        derived=(("_detail_maps", _DETAIL_MAPS),),
        stored_derived=(("detail_items", DETAIL_ITEMS_SQL),),
        replaced=("detail_list",),
        shape_checks=_DETAIL_RULES,
    ),
    _MS.stem: FileRules(
        key=("mlog_id", "dt"),
        required=tuple(c.name for c in _MS.columns),
        checks=(_DT_RANGE, *_not_negative(_MS, *(c.name for c in _MS.columns[2:]))),
    ),
    _CS.stem: FileRules(
        key=("creator_id", "dt"),
        required=tuple(c.name for c in _CS.columns),
        checks=(_DT_RANGE, *_not_negative(_CS, "publish_mlog_count")),
    ),
    _UD.stem: FileRules(
        key=("user_id",),
        required=("user_id",),
        checks=_not_negative(_UD, "age", "registered_month_cnt", "follow_cnt", "level"),
    ),
    _MD.stem: FileRules(
        key=("mlog_id",),
        required=("mlog_id", "creator_id", "type"),
        checks=(
            Rule("type NOT IN (1, 2)", "type is neither 1 (image set) nor 2 (video)", "type"),
            *_not_negative(_MD, "publish_time"),
            Rule(f"talk_id < {fmt.NO_TALK_SENTINEL}", "talkId is below -1, the 'no topic' sentinel", "talkId"),
        ),
    ),
    _CD.stem: FileRules(
        key=("creator_id",),
        required=("creator_id",),
        checks=_not_negative(_CD, "registered_month_cnt", "follows", "followeds", "creator_type", "level"),
    ),
}


def stored_columns(spec: fmt.NcmFile) -> list[str]:
    """Columns of the stored table in order: the file's canonical columns with parsed ones replacing raw
    text, then ``source_line``, the line of the source file each row was read from."""
    rules = RULES[spec.stem]
    kept = [c.name for c in spec.columns if c.name not in rules.replaced]
    return [*kept, *(name for name, _ in rules.stored_derived), "source_line"]
