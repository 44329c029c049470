"""What makes a parsed row of each NCM file acceptable, as SQL.

The CSV reader already rejects rows that do not parse (wrong field count, a value that does not fit its
type, bad encoding). These rules catch rows that parse but cannot be right: a ``dt`` outside the data, an
``impressTime`` on another day than its ``dt``, a required field given as the null token, a malformed
swipe-down list. Each rule is a SQL condition over the canonical column names and the reason stored in
the quarantine file. Soft anomalies that do occur in the real log (an action flag on a non-clicked row,
about 0.06% of action rows) are kept and counted by the asset checks instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from churn_dagster import ncm_format as fmt

# Canonical struct of one swipe-down entry; every value is a string in the file.
_DETAIL_JSON_SHAPE = "[{" + ",".join(f'"{k}":"VARCHAR"' for k in fmt.DETAIL_LIST_KEYS) + "}]"
_DETAIL_JSON = "replace(detail_list, '''', '\"')"
# A list that is not valid JSON, or not an array, parses to NULL, and its row is quarantined.
_DETAIL_PARSED = f"TRY(from_json({_DETAIL_JSON}, '{_DETAIL_JSON_SHAPE}'))"
DETAIL_ITEMS_SQL = f"""
list_transform({_DETAIL_PARSED}, lambda x: struct_pack(
    mlog_id := x.mlogId,
    position := TRY_CAST(x.position AS INTEGER),
    view_time := TRY_CAST(x.mlogViewTime AS DOUBLE),
    logtime_ms := TRY_CAST(x.logtime AS BIGINT),
    is_like := TRY_CAST(x.isZan AS BOOLEAN),
    is_comment := TRY_CAST(x.isComment AS BOOLEAN),
    is_into_homepage := TRY_CAST(x.isIntoPersonalHomepage AS BOOLEAN),
    is_share := TRY_CAST(x.isShare AS BOOLEAN),
    is_view_comment := TRY_CAST(x.isViewComment AS BOOLEAN)
))"""
DETAIL_ITEMS_TYPE = (
    "STRUCT(mlog_id VARCHAR, position INTEGER, view_time DOUBLE, logtime_ms BIGINT, is_like BOOLEAN, "
    "is_comment BOOLEAN, is_into_homepage BOOLEAN, is_share BOOLEAN, is_view_comment BOOLEAN)[]"
)
# A list is complete when it parsed and every field of every entry parsed; the real file holds one `[]`.
_DETAIL_COMPLETE = (
    "(len(detail_items) = 0 OR list_bool_and(list_transform(detail_items, lambda e: e.mlog_id IS NOT NULL AND e.position IS NOT NULL "
    "AND e.view_time IS NOT NULL AND e.logtime_ms IS NOT NULL AND e.is_like IS NOT NULL "
    "AND e.is_comment IS NOT NULL AND e.is_into_homepage IS NOT NULL AND e.is_share IS NOT NULL "
    "AND e.is_view_comment IS NOT NULL)))"
)

_LOCAL_EPOCH_DAY = f"((impress_time_ms // 1000 + {fmt.SHANGHAI_UTC_OFFSET_SECONDS}) // 86400)"


@dataclass(frozen=True)
class FileRules:
    """Per-file rules: the natural key, derived columns, and the ordered (condition, reason, column) checks."""

    key: tuple[str, ...]
    required: tuple[str, ...]
    checks: tuple[tuple[str, str, str], ...]
    derived: tuple[tuple[str, str], ...] = ()
    # Columns dropped from the stored table once the derived ones replace them.
    replaced: tuple[str, ...] = ()

    def problem_sql(self, spec: fmt.NcmFile) -> str:
        """A CASE expression giving the first violated rule's reason, or NULL for a good row."""
        whens = "\n".join(f"    WHEN {cond} THEN '{reason}'" for cond, reason, _ in self.all_checks(spec))
        return f"CASE\n{whens}\nEND"

    def all_checks(self, spec: fmt.NcmFile) -> list[tuple[str, str, str]]:
        missing = [(f"{c} IS NULL", f"{spec.column(c).source} is missing", spec.column(c).source) for c in self.required]
        return [*missing, *self.checks]

    def column_of_reason(self, spec: fmt.NcmFile) -> dict[str, str]:
        """Which source column each reason is about, for the quarantine file."""
        return {reason: column for _, reason, column in self.all_checks(spec)}


_DT_RANGE = ("dt NOT BETWEEN 1 AND $num_days", "dt is outside the days of the data", "dt")

RULES: dict[str, FileRules] = {
    fmt.IMPRESSIONS.stem: FileRules(
        key=("user_id", "impress_time_ms", "impress_position", "mlog_id"),
        required=(
            "dt",
            "impress_position",
            "impress_time_ms",
            "is_click",
            "is_comment",
            "is_into_homepage",
            "is_share",
            "is_view_comment",
            "is_like",
            "mlog_id",
            "user_id",
        ),
        checks=(
            _DT_RANGE,
            (f"{_LOCAL_EPOCH_DAY} <> $first_epoch_day + dt - 1", "impressTime is not on the Asia/Shanghai day dt", "impressTime"),
            ("impress_position < 0", "impressPosition is negative", "impressPosition"),
            ("mlog_view_time < 0", "mlogViewTime is negative", "mlogViewTime"),
            (
                f"detail_list IS NOT NULL AND NOT coalesce({_DETAIL_COMPLETE}, false)",
                "detailMlogInfoList is not a list of dicts with the published keys",
                "detailMlogInfoList",
            ),
        ),
        derived=(("detail_items", DETAIL_ITEMS_SQL),),
        replaced=("detail_list",),
    ),
    fmt.MLOG_STATS.stem: FileRules(
        key=("mlog_id", "dt"),
        required=tuple(c.name for c in fmt.MLOG_STATS.columns),
        checks=(
            _DT_RANGE,
            ("least(" + ", ".join(c.name for c in fmt.MLOG_STATS.columns[2:]) + ") < 0", "a count is negative", "userImprssionCount"),
        ),
    ),
    fmt.CREATOR_STATS.stem: FileRules(
        key=("creator_id", "dt"),
        required=tuple(c.name for c in fmt.CREATOR_STATS.columns),
        checks=(_DT_RANGE, ("publish_mlog_count < 0", "PushlishMlogCnt is negative", "PushlishMlogCnt")),
    ),
    fmt.USER_DEMOGRAPHICS.stem: FileRules(key=("user_id",), required=("user_id",), checks=()),
    fmt.MLOG_DEMOGRAPHICS.stem: FileRules(
        key=("mlog_id",),
        required=("mlog_id", "creator_id", "type"),
        checks=(("type NOT IN (1, 2)", "type is neither 1 (image set) nor 2 (video)", "type"),),
    ),
    fmt.CREATOR_DEMOGRAPHICS.stem: FileRules(key=("creator_id",), required=("creator_id",), checks=()),
}
