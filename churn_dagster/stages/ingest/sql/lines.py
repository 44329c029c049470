"""Physical lines of a source file, numbered, in file order, in bounded memory.

A CSV parser decides what a record is: DuckDB skips blank lines and merges a quoted field that runs over a
newline into one record, so the records it returns say nothing reliable about the file's lines. The NCM
files never hold a newline inside a field, so here a *line* is the unit: the file is read in large blocks,
cut at newlines, and every physical line after the header becomes one numbered row (``line`` counts the
header as line 1, blank lines included). The count of lines read is taken from the newline bytes
themselves, independently of the splitting, and the two must agree.

A line longer than ``max_line_bytes`` is not held in memory: its first bytes are kept, flagged
``too_long``, and the rest is skipped up to its newline. A final line without a newline is a line; the
empty string after a final newline is not.

Each line is handed on *with* its newline (one is added after a final line that has none, and after an
over-long line's kept prefix): the lines of a block are then views into the block's own bytes, found by one
search for the newlines, and the lines a fast path types are already the newline-separated text Arrow's CSV
reader takes. Splitting the block into lines without newlines, and joining them again for Arrow, copied
every byte twice. The exact SQL paths read the lines without it (:func:`without_newlines`).
"""

from __future__ import annotations

import gzip
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

BLOCK_BYTES = 32 << 20
# The longest real swipe-down list (6,222 fields) is about 160 kB.
MAX_LINE_BYTES = 4 << 20
# A piece of a block this short that holds bytes that are not UTF-8 goes wholly the exact way
# (:func:`split_canonical`).
MIN_PIECE = 32
# What a quarantine row keeps of an over-long line.
KEPT_PREFIX_BYTES = 4096
# ``raw`` is the line with its newline.
LINES_SCHEMA = pa.schema([("line", pa.int64()), ("raw", pa.large_binary()), ("too_long", pa.bool_())])


class LineCountMismatch(RuntimeError):
    """The lines handed on differ from the newlines counted in the bytes: a defect, never bad input."""


@dataclass
class LineCount:
    """Physical lines after the header, counted from the newline bytes as they stream past."""

    newlines: int = 0
    trailing_line: bool = False
    lines_emitted: int = 0

    @property
    def lines(self) -> int:
        return self.newlines + int(self.trailing_line)


def open_source(path: Path) -> BinaryIO:
    """The decompressed byte stream of a plain or gzip file (several gzip members read as one)."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


class Latin1AsUtf8:
    """An ISO-8859-1 (latin-1) byte stream handed on as UTF-8. Every byte is one character in latin-1, so any
    block transcodes on its own and newline bytes stay newline bytes: the line count is unchanged."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw

    def read(self, size: int = -1) -> bytes:
        return self.raw.read(size).decode("latin-1").encode("utf-8")

    def readline(self, size: int = -1) -> bytes:
        return self.raw.readline(size).decode("latin-1").encode("utf-8")


CR_INSIDE = "a carriage return (CR) inside the line"
BARE_CR_LINES = (f"{CR_INSIDE}: the lines end with CR alone (classic Mac line endings), which are not read; "
                 "convert them to LF or CRLF")


def read_header(stream: BinaryIO) -> bytes | None:
    """The first line, without its line terminator (at most ``MAX_LINE_BYTES + 1`` bytes of it: longer is
    too long); ``None`` for an empty file. Whether it is text at all (not compressed, not UTF-16, no CR
    inside, not too long) is the caller's check, made in that order: a compressed file may hold a CR
    anywhere and no newline for megabytes, and saying "compressed" is the message that helps."""
    line = stream.readline(MAX_LINE_BYTES + 1)
    if not line:
        return None
    return line.removesuffix(b"\n").removesuffix(b"\r")


_NEWLINE = pa.scalar(b"\n", pa.large_binary())


def _table(first_line: int, lines: pa.Array) -> pa.Table:
    too_long = pc.greater(pc.binary_length(lines), MAX_LINE_BYTES + 1)  # the newline does not count
    if pc.any(too_long).as_py():
        prefix = pc.binary_join_element_wise(pc.binary_slice(lines, 0, KEPT_PREFIX_BYTES), _NEWLINE,
                                             pa.scalar(b"", pa.large_binary()))
        lines = pc.if_else(too_long, prefix, lines)
    numbers = pa.array(np.arange(first_line, first_line + len(lines), dtype=np.int64))
    return pa.Table.from_arrays([numbers, lines, too_long], schema=LINES_SCHEMA)


def _split(block: bytes | memoryview) -> pa.Array:
    """The lines of ``block`` (whole lines, each ended by a newline) as views into its bytes: no copy."""
    data = pa.py_buffer(block)
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
    offsets = np.zeros(len(ends) + 1, dtype=np.int64)
    offsets[1:] = ends + 1
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(ends), [None, pa.py_buffer(offsets), data])


def without_newlines(block: pa.Table) -> pa.Table:
    """``block`` (``line``, ``raw``, ``too_long``) with each line without its newline: what the exact SQL
    paths read. Copies the lines, so it is meant for the few a fast path left."""
    raw = pc.binary_slice(block.column("raw"), 0, -1)
    return block.set_column(block.schema.get_field_index("raw"), "raw", raw)


def _blocks(stream: BinaryIO, count: LineCount) -> Iterator[tuple[bytes | memoryview, bool]]:
    """Blocks of whole lines, each line ended by a newline, each block with a flag saying whether it is a
    single over-long line already cut to its prefix. Counts newlines as the bytes go by."""
    pending = b""
    skipping = False  # inside an over-long line: its prefix was emitted, the rest is dropped
    while True:
        data = stream.read(BLOCK_BYTES)
        if not data:
            break
        count.newlines += data.count(b"\n")
        if skipping:
            cut = data.find(b"\n")
            if cut < 0:
                continue
            skipping, data = False, data[cut + 1 :]
        buffer = pending + data
        cut = buffer.rfind(b"\n")
        if cut < 0:
            pending = buffer
        else:
            yield memoryview(buffer)[: cut + 1], False  # a view: the block is not copied again
            pending = buffer[cut + 1 :]
        if len(pending) > MAX_LINE_BYTES:
            yield pending[:KEPT_PREFIX_BYTES] + b"\n", True
            pending, skipping = b"", True
    if skipping:  # the file ended inside an over-long last line, which has no newline
        count.trailing_line = True
    elif pending:
        count.trailing_line = True
        yield pending + b"\n", False


def line_tables(stream: BinaryIO, count: LineCount, first_line: int = 2) -> Iterator[pa.Table]:
    """Arrow tables (``line``, ``raw``, ``too_long``) of every line after the header, in order, each line with
    its newline; the first is line ``first_line`` (2 after a header line, 1 in a file without one).

    Reading, decompression and splitting run in a background thread, one block ahead, so they overlap with
    whatever the caller does with each table."""
    handoff: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    done = object()

    def hand_over(item) -> None:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for block, cut_long_line in _blocks(stream, count):
                hand_over((_split(block), cut_long_line))
                if stop.is_set():
                    return
            hand_over(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            hand_over(exc)

    worker = threading.Thread(target=produce, name="line-reader", daemon=True)
    worker.start()
    next_line = first_line
    try:
        while (item := handoff.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            lines, cut_long_line = item
            table = _table(next_line, lines)
            if cut_long_line:
                table = table.set_column(2, "too_long", pa.array([True]))
            next_line += table.num_rows
            count.lines_emitted += table.num_rows
            yield table
    finally:
        stop.set()  # a consumer that stops early (an error downstream) releases the reader
        worker.join()
    if count.lines_emitted != count.lines:
        raise LineCountMismatch(f"{count.lines_emitted} lines split, {count.lines} counted from the newlines")


def split_canonical(block: pa.Table, pattern: str,
                    parse: Callable[[pa.Array], pa.Table | None]) -> tuple[pa.Table | None, pa.Table]:
    """``block`` (``line``, ``raw``, ``too_long``) as (``parse`` of the text of its lines that match the RE2
    ``pattern``, with their ``line``; the rest of the block, for the exact path): the fast paths of the NCM
    ingest and of event-log staging. ``pattern`` is anchored (``^...$``) on a line without its newline;
    ``parse`` receives the lines with theirs. Arrow checks UTF-8 a whole array at a time, so a block with bytes that
    are not UTF-8 is halved until the pieces holding them are at most ``MIN_PIECE`` lines; those go the exact
    way, which names the line. ``parse`` returning None, or a row count other than the lines it was given,
    sends the whole block the exact way."""
    try:
        text = block.column("raw").cast(pa.large_string())
    except pa.ArrowInvalid:
        if block.num_rows <= MIN_PIECE:
            return None, block
        half = block.num_rows // 2
        halves = [split_canonical(block.slice(0, half), pattern, parse),
                  split_canonical(block.slice(half), pattern, parse)]
        typed = [t for t, _ in halves if t is not None]
        return (pa.concat_tables(typed) if typed else None), pa.concat_tables([rest for _, rest in halves])
    if not pattern.endswith("$") or pattern.endswith("\\$"):
        raise ValueError(f"the canonical pattern must end with the anchor $: {pattern[-20:]!r}")
    ended = pattern[:-1] + "\\n$"
    fast = pc.and_(pc.invert(block.column("too_long")), pc.match_substring_regex(text, ended))
    every = pc.all(fast).as_py()
    if not every and not pc.any(fast).as_py():
        return None, block
    kept = text if every else text.filter(fast)  # a clean block's lines are parsed where they lie
    parsed = parse(kept)
    if parsed is None or parsed.num_rows != len(kept):  # never expected: the pattern admits one record a line
        return None, block
    return parsed.append_column("line", block.column("line").filter(fast)), block.filter(pc.invert(fast))


def read_csv_lines(lines: pa.Array, names: list[str], parse_options: pa_csv.ParseOptions,
                   convert_options: pa_csv.ConvertOptions) -> pa.Table | None:
    """``lines`` (text, each with its newline) parsed by Arrow's CSV reader; None where Arrow refuses them."""
    try:
        return pa_csv.read_csv(
            pa.BufferReader(joined_lines(lines)),
            # Arrow parses in blocks and refuses a line longer than one: the lines handed here are at most
            # MAX_LINE_BYTES (longer ones are cut and go the exact way), so a block of twice that holds any.
            read_options=pa_csv.ReadOptions(column_names=names, use_threads=False, block_size=2 * MAX_LINE_BYTES),
            parse_options=parse_options, convert_options=convert_options)
    except pa.ArrowInvalid:
        return None


def joined_lines(lines: pa.Array | pa.ChunkedArray) -> pa.Buffer:
    """The lines (each with its newline) as one buffer: their values buffer, where Arrow lays them out back
    to back, sliced to them; no copy for lines of one chunk."""
    if isinstance(lines, pa.ChunkedArray):  # combine_chunks copies even a single chunk
        lines = lines.chunk(0) if lines.num_chunks == 1 else lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
    start, stop = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    return lines.buffers()[2][start:stop]
