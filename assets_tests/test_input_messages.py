"""A source file that cannot be read says so in one line naming the file (and the line where there is one) and
what to do, never with a parser's or the operating system's bare text: CR line endings, CR mixed with LF or
CRLF, byte-order marks, a folder, an unreadable file, a symbolic link that loops or leads nowhere, a ``.gz`` that
is not gzip or is cut short, a gzip named ``.csv``, an empty file, a header that is blank, missing or another
file's; and a first day after the last day is one line, not two."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import CALENDAR, Imp, all_days, tid

from churn_dagster.core.resources import MissingSourceError, NcmSourceResource
from churn_dagster.domain import ncm_format as fmt
from churn_dagster.settings import SettingsError, settings_from_env
from churn_dagster.stages.ingest.sql import BadInputError, ingest
from churn_dagster.synth.generator import generate

REPO = Path(__file__).resolve().parents[1]
HEADER = ",".join(fmt.IMPRESSIONS.header)
LINES = [Imp(tid("U1"), "2019-11-01 10:00:00", p).csv_line() for p in (1, 2, 3)]
CSV = ("\n".join([HEADER, *LINES]) + "\n").encode()


def _source(tmp_path: Path, name: str, body: bytes | None = None) -> Path:
    folder = tmp_path / "src"
    folder.mkdir(exist_ok=True)
    if body is not None:
        (folder / name).write_bytes(body)
    return folder


def _ingest(folder: Path, lake, con):
    files = NcmSourceResource(directory=str(folder)).files_for(fmt.IMPRESSIONS, all_days())
    return ingest(con, fmt.IMPRESSIONS, files, lake, CALENDAR, all_days())


FATAL = {
    # case: (file name, bytes, the message after the file's path)
    "CR line endings": ("impression_data.csv", ("\r".join([HEADER, *LINES]) + "\r").encode(),
                        ", line 1: a carriage return (CR) inside the line: the lines end with CR alone (classic Mac "
                        "line endings), which are not read; convert them to LF or CRLF"),
    "UTF-16 with its BOM": ("impression_data.csv", CSV.decode().encode("utf-16"),
                            ", line 1: the file is UTF-16 (it starts with a UTF-16 byte-order mark); expected UTF-8"),
    # mtime 13 puts a CR in the gzip header's bytes: "compressed" must still be what the message says
    "gzip named .csv": ("impression_data.csv", gzip.compress(CSV, mtime=13),
                        ", line 1: the file is gzip-compressed; name it impression_data.csv.gz"),
    "gzip compressed twice": ("impression_data.csv.gz", gzip.compress(gzip.compress(CSV, mtime=13), mtime=0),
                              ", line 1: the file is gzip-compressed; it is compressed twice; decompress it once"),
    "zip named .csv": ("impression_data.csv", b"PK\x03\x04\x14\x00\r\n" + bytes(range(256)),
                       ", line 1: the file is a zip archive (or an Excel .xlsx workbook); extract or export the CSV "
                       "file"),
    "zstd named .csv": ("impression_data.csv", b"\x28\xb5\x2f\xfd\x00\r" + bytes(64),
                        ", line 1: the file is zstd-compressed; decompress it (only gzip is read)"),
    "Parquet named .csv": ("impression_data.csv", b"PAR1\x15\x04" + bytes(300_000),
                           ", line 1: the file is a Parquet file; export it as CSV"),
    "header too long": ("impression_data.csv", b"a" * 5_000_000 + b"\n" + CSV,
                        ", line 1: the header line is longer than 4194304 bytes; expected the column names"),
    ".gz that is not gzip": ("impression_data.csv.gz", CSV,
                             ": is not gzip-compressed, though its name ends in .gz (rename it to .csv, or compress it)"),
    "gzip cut short": ("impression_data.csv.gz", gzip.compress(CSV * 50)[:-40],
                       ", after line 1: the gzip data ends early or is damaged (Compressed file ended before the "
                       "end-of-stream marker was reached); the file was cut short or corrupted, deliver it again"),
    "empty (0 bytes)": ("impression_data.csv", b"", ": the file is empty; expected a header line"),
    "empty gzip": ("impression_data.csv.gz", gzip.compress(b""), ": the file is empty; expected a header line"),
    "blank header": ("impression_data.csv", b"\n" + CSV, ", line 1: the header line is blank; expected the column names"),
    "no header": ("impression_data.csv", ("\n".join(LINES) + "\n").encode(),
                  ", line 1: not the header of impression_data.csv (no known column among 'NA', '1', '1', "
                  f"'1572573600000', '0' and 8 more); expected the columns {', '.join(fmt.IMPRESSIONS.header)}"),
    "another file's header only": ("impression_data.csv", (",".join(fmt.USER_DEMOGRAPHICS.header) + "\n").encode(),
                                   ", line 1: the header of user_demographics.csv, not of impression_data.csv; "
                                   "is the file misnamed?"),
    "a mangled header only": ("impression_data.csv", (HEADER.replace("userId", "user id") + "\n").encode(),
                              ", line 1: unknown column(s) 'user id'; expected the columns "
                              f"{', '.join(fmt.IMPRESSIONS.header)}"),
}


@pytest.mark.parametrize("case", list(FATAL))
def test_an_unreadable_file_is_one_line_naming_it(tmp_path, lake, con, case):
    name, body, message = FATAL[case]
    folder = _source(tmp_path, name, body)
    with pytest.raises(BadInputError) as raised:
        _ingest(folder, lake, con)
    assert str(raised.value) == f"{folder / name}{message}"


@pytest.mark.parametrize(("case", "make", "message"), [
    ("a folder", lambda p: p.mkdir(), "is a folder, not a file"),
    ("a symbolic link loop", lambda p: p.symlink_to(p.name), "is a symbolic link that loops back "
                                                             "on itself (it points to impression_data.csv)"),
    ("a dangling symbolic link", lambda p: p.symlink_to("gone.csv"), "is a symbolic link to gone.csv, which does "
                                                                     "not exist"),
])
def test_what_stands_in_the_file_s_place_is_named_not_called_missing(tmp_path, lake, con, case, make, message):
    folder = _source(tmp_path, "unused")
    make(folder / "impression_data.csv")
    with pytest.raises(BadInputError) as raised:
        _ingest(folder, lake, con)
    assert str(raised.value) == f"{folder / 'impression_data.csv'}: {message}"


@pytest.mark.parametrize(("make", "why"), [
    (lambda p: p.symlink_to(p.name), "is a symbolic link that loops or leads nowhere"),
    (lambda p: p.write_text("x"), "is a file, not a folder"),
    (lambda p: None, "does not exist"),
])
def test_a_source_folder_that_is_no_folder_is_named(tmp_path, make, why):
    make(tmp_path / "source")
    with pytest.raises(MissingSourceError) as raised:
        NcmSourceResource(directory=str(tmp_path / "source")).files_for(fmt.IMPRESSIONS, all_days())
    assert str(raised.value) == f"{tmp_path / 'source'}: the source folder {why}"


def test_a_file_without_read_permission_is_named():
    """Read as an unprivileged user (root reads every file: a process started as root gives up its effective
    user once its modules are imported), a file with no permission at all."""
    folder = Path(tempfile.mkdtemp(prefix="churn-unreadable-"))
    try:
        folder.chmod(0o755)
        (folder / "impression_data.csv").write_bytes(CSV)
        (folder / "impression_data.csv").chmod(0)
        code = ("import os, sys; from pathlib import Path; from churn_dagster.stages.ingest.sql import BadInputError, "
                "file_columns; from churn_dagster.domain import ncm_format as fmt\n"
                "if os.geteuid() == 0: os.setegid(65534); os.seteuid(65534)\n"
                "try: file_columns(fmt.IMPRESSIONS, Path(sys.argv[1]))\n"
                "except BadInputError as exc: print(exc)")
        done = subprocess.run([sys.executable, "-c", code, str(folder / "impression_data.csv")], cwd=REPO,
                              capture_output=True, text=True, timeout=120, check=True)
        assert done.stdout.strip() == (f"{folder / 'impression_data.csv'}: cannot be read: permission denied "
                                       "(give the pipeline's user read access)")
    finally:
        shutil.rmtree(folder)


def test_cr_mixed_with_crlf_and_a_bom_opening_a_line_are_quarantined_with_their_reason(tmp_path, lake, con):
    body = (f"{HEADER}\r\n{LINES[0]}\r{LINES[1]}\r\n\ufeff{LINES[2]}\r\n{LINES[2]}\r\n").encode()
    result = _ingest(_source(tmp_path, "impression_data.csv", body), lake, con)
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (3, 1, 2)
    assert result.quarantined_by_reason == {
        "a carriage return (CR) inside the line: lines ending with CR alone run into the next (CR mixed with LF "
        "or CRLF)": 1,
        "a byte-order mark (BOM) opens the line (a file appended with its own BOM)": 1,
    }


def test_a_utf8_bom_before_the_header_is_still_read(tmp_path, lake, con):
    result = _ingest(_source(tmp_path, "impression_data.csv", b"\xef\xbb\xbf" + CSV.replace(b"\n", b"\r\n")), lake, con)
    assert (result.rows_read, result.total_loaded, result.rows_quarantined) == (3, 3, 0)


@pytest.mark.parametrize("environ", [
    {"CHURN_FIRST_DAY": "2019-12-01"},
    {"CHURN_FIRST_DAY": "2019-11-30", "CHURN_LAST_DAY": "2019-11-01"},
    {"CHURN_FIRST_DAY": "2019-12-01", "CHURN_CASE_STUDY_FEATURE_DAYS": "10"},
])
def test_a_first_day_after_the_last_is_the_one_problem_reported(environ):
    with pytest.raises(SettingsError) as raised:
        settings_from_env(environ)
    first, last = environ["CHURN_FIRST_DAY"], environ.get("CHURN_LAST_DAY", "2019-11-30")
    assert raised.value.problems == [f"CHURN_FIRST_DAY ({first}) must not be after CHURN_LAST_DAY ({last})"]


def test_the_command_prints_one_line_for_a_symbolic_link_loop(tmp_path):
    """Through ``churn-dagster materialize`` the loop is the run's one error line, not "not found"."""
    generate(tmp_path / "source", users=50, seed=1)
    loop = tmp_path / "source" / "user_demographics.csv"
    loop.unlink()
    loop.symlink_to(loop.name)
    home = tmp_path / "dagster_home"
    shutil.copy(REPO / "dagster.yaml", home)
    done = subprocess.run([sys.executable, "-m", "churn_dagster.cli", "materialize", "--source", str(tmp_path / "source"),
                           "--data-dir", str(tmp_path / "data"), "--select", "raw_user_demographics"],
                          cwd=REPO, env={**os.environ, "DAGSTER_HOME": str(home), "CHURN_DUCKDB_MEMORY_LIMIT": "1GB"},
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("churn-dagster")]
    assert line.startswith(f"churn-dagster: error: {loop}: is a symbolic link that loops back on itself (it "
                           "points to user_demographics.csv) (in raw_user_demographics, run ")
