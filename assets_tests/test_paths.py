"""Paths are paths: folders named with glob characters read exactly their own files (DuckDB would expand
``*?[]``), and no code path deletes or rewrites what a symbolic link inside the data directory points to."""

from __future__ import annotations

import os

import dagster as dg
import pytest
from conftest import CALENDAR, Imp, resources_for, tid, write_impressions, write_snapshots
from pipeline_helpers import build_all_tensors, build_cohort_graph, ingest_folder
from test_faults import digest

from churn_dagster.definitions import build_definitions
from churn_dagster.runs.runner import data_graph_steps, run_steps
from churn_dagster.storage.duck import atomic_dir, literal_path
from churn_dagster.synth.generator import generate

# The fixture's users and cards, as IDs of the published grammar (see conftest.tid).
U1 = tid("U1")


def _data_graph(source, root):
    with dg.DagsterInstance.ephemeral() as instance:
        run_steps(build_definitions(resources=resources_for(source, root)), instance, data_graph_steps(CALENDAR), echo=lambda _: None)
    return root / "data"


def test_literal_path_escapes_every_glob_character():
    assert literal_path("/x/src[1]/a*b?.csv") == "/x/src[[]1]/a[*]b[?].csv"


@pytest.mark.parametrize("odd_name", ["src[1]", "s*c?"])
def test_a_folder_named_like_a_glob_reads_only_its_own_files(tmp_path, odd_name):
    decoys = {"src[1]": "src1", "s*c?": "sXcY"}
    generate(tmp_path / odd_name / "source", users=400, seed=5)
    generate(tmp_path / decoys[odd_name] / "source", users=300, seed=6)  # what the glob would also match
    _data_graph(tmp_path / decoys[odd_name] / "source", tmp_path / decoys[odd_name])
    got = _data_graph(tmp_path / odd_name / "source", tmp_path / odd_name)
    reference = _data_graph(tmp_path / odd_name / "source", tmp_path / "plain")
    assert digest(got) == digest(reference)


def test_replacing_a_linked_partition_replaces_only_the_link(tmp_path, lake, con):
    src = tmp_path / "src"
    write_impressions(src, [Imp(U1, "2019-11-01 10:00:00")])
    write_snapshots(src, [U1])
    precious = tmp_path / "elsewhere" / "keep.parquet"
    precious.parent.mkdir()
    precious.write_bytes(b"not ours")
    day = lake.raw_day("impression_data", CALENDAR.day(1))
    day.parent.mkdir(parents=True)
    os.symlink(precious, day)
    ingest_folder(con, src, lake, stems={"impression_data"})
    assert precious.read_bytes() == b"not ours" and not day.is_symlink()


def test_replacing_a_linked_tensor_folder_never_deletes_its_target(tmp_path, lake, con):
    src = tmp_path / "src"
    generate(src, users=300, seed=2)
    ingest_folder(con, src, lake)
    cohort = CALENDAR.day(1)
    build_cohort_graph(con, lake, [cohort])
    precious = tmp_path / "elsewhere"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    folder = lake.tensors(cohort)
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(precious, folder)  # a user pointed the tensor folder at another disk
    planted = folder.parent / ".versions" / f"{folder.name}-planted"
    planted.parent.mkdir(exist_ok=True)
    os.symlink(precious, planted)  # and a link that looks like one of our versions
    for _ in range(3):
        build_all_tensors(con, lake, [cohort])
    assert (precious / "notes.txt").read_text() == "mine" and planted.is_symlink()
    assert folder.is_symlink() and (folder / "offsets.npy").exists()
    versions = [p for p in (folder.parent / ".versions").iterdir() if not p.is_symlink()]
    assert len(versions) == 2  # the current build and the one before it, for readers that resolved it


def test_a_failed_build_leaves_the_current_version(tmp_path):
    final = tmp_path / "tensors" / "cohort=x"
    with atomic_dir(final) as out:
        (out / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(final) as out:
        (out / "a").write_text("2")
        raise RuntimeError("boom")
    assert (final / "a").read_text() == "1"
