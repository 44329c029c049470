"""The six NetEase Cloud Music files exactly as published: one declaration used by the reader and the writer.

The loader (``stages/ingest/sql/``) and the synthetic generator (``synth/``) both read this module, so a
quirk of the real files is written down once: column order, the header typos, the per-file null token and
quoting style. See ``docs/DATA_FORMAT.md`` for the evidence behind each entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Every ID of the published files (user, card, creator, song, artist; the card IDs inside the swipe-down
# lists too) is a decimal number written one token per digit: a letter G..P for 0..9, each followed by C, so
# "GCHC" is 01 (ncm_data_facts.md §0). The real heads hold 1 to 10 digits (2 to 20 characters: artistId
# "OC" to userId "PCNCGCGCLCOCOCOCJCGC"); anything else, a space, a tab, a look-alike letter, a zero-width
# character or a longer run, is not an ID of these files and would load as a new user or card.
ID_DIGIT_LETTERS = "GHIJKLMNOP"
ID_TOKEN_END = "C"
MAX_ID_DIGITS = 10
NO_SONG_SENTINEL = "AFBHAHLH"


@dataclass(frozen=True)
class Grammar:
    """What a text column's every non-null value must be: ``pattern`` (RE2, matched against the whole
    field after unquoting) and ``described``, the words the quarantine reason uses for it
    (``<column> is not <described>``)."""

    pattern: str
    described: str

    @property
    def admits_comma(self) -> bool:
        """Whether a value may hold a comma (the category path): a comma of the pattern outside a ``{m,n}``
        repetition, which only a quoted field can carry."""
        return "," in re.sub(r"\{[0-9]*,[0-9]*\}", "", self.pattern)


ID_GRAMMAR = Grammar(
    f"([{ID_DIGIT_LETTERS[0]}-{ID_DIGIT_LETTERS[-1]}]{ID_TOKEN_END}){{1,{MAX_ID_DIGITS}}}",
    f"an ID as published (1 to {MAX_ID_DIGITS} tokens, each a letter G..P followed by C)",
)
# songId and artistId write "no song" (video cards) as a sentinel outside the ID alphabet.
SONG_ID_GRAMMAR = Grammar(f"{ID_GRAMMAR.pattern}|{NO_SONG_SENTINEL}",
                          f"{ID_GRAMMAR.described} or the no-song sentinel {NO_SONG_SENTINEL}")
# contentId is a category path of three levels, e.g. "5001,5010,5054" (quoted in the file for its commas).
_CATEGORY = "[1-9][0-9]{0,9}"
CONTENT_PATH_GRAMMAR = Grammar(f"{_CATEGORY},{_CATEGORY},{_CATEGORY}",
                               "a category path as published (three comma-separated numbers such as 5001,5010,5054)")


@dataclass(frozen=True)
class Column:
    """One column of a published file.

    ``source`` is the header spelling in the real file (typos included), ``aliases`` are other spellings we
    accept (the documented ones), ``name`` is the canonical snake_case name used in Parquet, and
    ``duck_type`` is the stored type; a value that is not strictly of that type (see
    ``stages/ingest/sql/fields.py``) is quarantined with its line and column instead of being coerced.
    ``identifier`` marks an ID: an empty value is a missing ID, never the ID ``''``. ``grammar`` is what
    every value of a text column must match (:data:`ID_GRAMMAR` for the IDs); a value that does not is
    quarantined with the column named, never loaded as another user or card.
    """

    source: str
    name: str
    duck_type: str
    aliases: tuple[str, ...] = ()
    identifier: bool = False
    grammar: Grammar | None = None

    @property
    def is_string(self) -> bool:
        return self.duck_type == "VARCHAR"


@dataclass(frozen=True)
class NcmFile:
    """One published file: its stem, columns in file order, null token and quoting style.

    ``null_token`` differs per file: the impression file writes ``NA``, user demographics leave the field
    empty, and the R-style files quote an empty string (``""``). ``quote_strings`` marks the R
    ``write.csv`` files that quote every string field and the header; those three files also end their lines
    with CRLF (``line_terminator``), the others with LF. ``daily`` files carry a ``dt`` column and are stored
    one Parquet file per day.
    """

    stem: str
    columns: tuple[Column, ...]
    null_token: str
    quote_strings: bool
    daily: bool
    line_terminator: str = "\n"

    @property
    def header(self) -> list[str]:
        return [c.source for c in self.columns]

    @property
    def null_spellings(self) -> tuple[str, ...]:
        """Field texts (as written, quotes included) that mean NULL when reading: the impression file's
        ``NA``; an empty field or the quoted empty string ``""`` in the others."""
        return (self.null_token,) if self.null_token else ("", '""')

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _flags(*pairs: tuple[str, str]) -> tuple[Column, ...]:
    return tuple(Column(src, name, "BOOLEAN") for src, name in pairs)


def _id(source: str, name: str, grammar: Grammar = ID_GRAMMAR) -> Column:
    return Column(source, name, "VARCHAR", identifier=True, grammar=grammar)


IMPRESSIONS = NcmFile(
    stem="impression_data",
    columns=(
        Column("detailMlogInfoList", "detail_list", "VARCHAR"),
        Column("dt", "dt", "INTEGER"),
        Column("impressPosition", "impress_position", "INTEGER"),
        Column("impressTime", "impress_time_ms", "BIGINT"),
        *_flags(
            ("isClick", "is_click"),
            ("isComment", "is_comment"),
            ("isIntoPersonalHomepage", "is_into_homepage"),
            ("isShare", "is_share"),
            ("isViewComment", "is_view_comment"),
            ("isLike", "is_like"),
        ),
        _id("mlogId", "mlog_id"),
        Column("mlogViewTime", "mlog_view_time", "DOUBLE"),
        _id("userId", "user_id"),
    ),
    null_token="NA",
    quote_strings=False,
    daily=True,
)

USER_DEMOGRAPHICS = NcmFile(
    stem="user_demographics",
    columns=(
        _id("userId", "user_id"),
        Column("province", "province", "VARCHAR"),
        Column("age", "age", "INTEGER"),
        Column("gender", "gender", "VARCHAR"),
        Column("registeredMonthCnt", "registered_month_cnt", "INTEGER"),
        Column("followCnt", "follow_cnt", "INTEGER"),
        Column("level", "level", "INTEGER"),
    ),
    null_token="",
    quote_strings=False,
    daily=False,
)

MLOG_DEMOGRAPHICS = NcmFile(
    stem="mlog_demographics",
    columns=(
        _id("mlogId", "mlog_id"),
        _id("songId", "song_id", SONG_ID_GRAMMAR),
        _id("artistId", "artist_id", SONG_ID_GRAMMAR),
        _id("creatorId", "creator_id"),
        Column("publishTime", "publish_time", "INTEGER"),
        Column("type", "type", "INTEGER"),
        Column("contentId", "content_id", "VARCHAR", grammar=CONTENT_PATH_GRAMMAR),
        Column("talkId", "talk_id", "BIGINT"),
    ),
    null_token="",
    quote_strings=True,
    daily=False,
    line_terminator="\r\n",
)

MLOG_STATS = NcmFile(
    stem="mlog_stats",
    columns=(
        _id("mlogId", "mlog_id"),
        Column("dt", "dt", "INTEGER"),
        Column("userImprssionCount", "user_impression_count", "BIGINT", ("userImpressionCount",)),
        Column("userClickCount", "user_click_count", "BIGINT"),
        Column("userLikeCount", "user_like_count", "BIGINT", ("userZanCount",)),
        Column("userCommentCount", "user_comment_count", "BIGINT"),
        Column("userShareCount", "user_share_count", "BIGINT"),
        Column("userViewCommentCount", "user_view_comment_count", "BIGINT"),
        Column("userIntoPersonalHomepageCount", "user_into_homepage_count", "BIGINT"),
        Column("userFollowCreatorCount", "user_follow_creator_count", "BIGINT"),
    ),
    null_token="",
    quote_strings=False,
    daily=True,
)

CREATOR_DEMOGRAPHICS = NcmFile(
    stem="creator_demographics",
    columns=(
        _id("creatorId", "creator_id"),
        Column("gender", "gender", "VARCHAR"),
        Column("registeredMonthCnt", "registered_month_cnt", "INTEGER"),
        Column("follows", "follows", "BIGINT"),
        Column("followeds", "followeds", "BIGINT"),
        Column("creatorType", "creator_type", "INTEGER"),
        Column("level", "level", "INTEGER"),
    ),
    null_token="",
    quote_strings=True,
    daily=False,
    line_terminator="\r\n",
)

CREATOR_STATS = NcmFile(
    stem="creator_stats",
    columns=(
        _id("creatorId", "creator_id"),
        Column("dt", "dt", "INTEGER"),
        Column("PushlishMlogCnt", "publish_mlog_count", "BIGINT", ("PublishMlogCnt",)),
    ),
    null_token="",
    quote_strings=True,
    daily=True,
    line_terminator="\r\n",
)

ALL_FILES: tuple[NcmFile, ...] = (
    IMPRESSIONS,
    USER_DEMOGRAPHICS,
    MLOG_DEMOGRAPHICS,
    MLOG_STATS,
    CREATOR_DEMOGRAPHICS,
    CREATOR_STATS,
)
FILES_BY_STEM = {f.stem: f for f in ALL_FILES}

# Sentinels of the real files (ncm_data_facts.md §3, §8); the no-song sentinel is declared with the IDs.
NO_TALK_SENTINEL = -1
MAX_VALID_REGISTERED_MONTHS = 80
# The longest view time (mlogViewTime, of a row or of a swipe-down entry) a row may carry: one day, in seconds.
# The real log's longest is 653 s; a larger value is a client's fault, and a bound keeps every sum of view
# times within the exact decimal sums of storage.duck.exact_sum.
MAX_VIEW_TIME_S = 86_400
# Keys of every dict inside detailMlogInfoList, in the order the real file writes them; all values are strings.
DETAIL_LIST_KEYS = (
    "isZan",
    "isComment",
    "mlogId",
    "isIntoPersonalHomepage",
    "mlogViewTime",
    "isShare",
    "isViewComment",
    "position",
    "logtime",
)
# dt is the calendar day in Asia/Shanghai, which has had no daylight saving time since 1991.
SHANGHAI_UTC_OFFSET_SECONDS = 8 * 3600
