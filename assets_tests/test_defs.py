"""The code location as a reviewed snapshot: ``churn_dagster.definitions.defs`` serialised to stable JSON and
compared with ``assets_tests/snapshots/defs.json``.

Any change to an asset's dependencies, partition mappings, partitions, group, kinds, owners, tags, code
version, pool, backfill policy, automation condition or checks, or to the jobs, schedules, sensors and
resource classes, shows up as a diff of that file in review. After an intended change, regenerate it::

    CHURN_UPDATE_SNAPSHOTS=1 pytest assets_tests/test_defs.py

Only public Dagster APIs are used, nothing names a module of churn_dagster other than
``churn_dagster.definitions``, and the resources appear as class names only (their values come from the
environment and from paths).

The partitions and the partition mappings are built from ``CHURN_*`` variables when the code location is
imported, so the snapshot is taken in a fresh interpreter with every ``CHURN_*``, ``DAGSTER_*`` and
``MLFLOW_*`` variable removed and ``DAGSTER_HOME``/``CHURN_DATA_DIR`` pointed at a temporary folder, as the
conftest does for every test: the defaults, whatever the shell or an earlier test set.

Not in the snapshot, for want of a public accessor: the jobs a run-status sensor monitors (its target jobs
are there). Asset descriptions and metadata are left out on purpose: test_definitions.py checks that every
asset is documented, and the text would only make the diff noisy.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "defs.json"
UPDATE_VARIABLE = "CHURN_UPDATE_SNAPSHOTS"
REGENERATE = f"{UPDATE_VARIABLE}=1 pytest assets_tests/test_defs.py"
KIND_TAG_PREFIX = "dagster/kind/"  # kinds are stored as tags too; they are listed under "kinds"


def _key(key: dg.AssetKey) -> str:
    return key.to_user_string()


def describe_partitions(partitions: dg.PartitionsDefinition | None) -> dict | None:
    if partitions is None:
        return None
    described: dict = {"class": type(partitions).__name__}
    if isinstance(partitions, dg.TimeWindowPartitionsDefinition):
        described.update(
            start=partitions.start.isoformat(), end=partitions.end.isoformat() if partitions.end else None,
            timezone=partitions.timezone, cron=partitions.cron_schedule, fmt=partitions.fmt,
            end_offset=partitions.end_offset,
        )
    elif isinstance(partitions, dg.StaticPartitionsDefinition):
        described["keys"] = list(partitions.get_partition_keys())
    elif isinstance(partitions, dg.DynamicPartitionsDefinition):
        described["name"] = partitions.name
    elif isinstance(partitions, dg.MultiPartitionsDefinition):
        described["dimensions"] = {d.name: describe_partitions(d.partitions_def) for d in partitions.partitions_defs}
    else:
        raise TypeError(f"describe_partitions: no description of {type(partitions).__name__} yet; add one")
    return described


def describe_mapping(mapping: dg.PartitionMapping) -> dict:
    described: dict = {"class": type(mapping).__name__}
    if isinstance(mapping, dg.TimeWindowPartitionMapping):
        described.update(
            start_offset=mapping.start_offset, end_offset=mapping.end_offset,
            allow_nonexistent_upstream_partitions=mapping.allow_nonexistent_upstream_partitions,
        )
    elif isinstance(mapping, dg.StaticPartitionMapping):
        described["downstream_by_upstream"] = {
            up: sorted(downs) for up, downs in mapping.downstream_partition_keys_by_upstream_partition_key.items()
        }
    elif isinstance(mapping, dg.SpecificPartitionsPartitionMapping):
        described["partition_keys"] = list(mapping.partition_keys)
    elif isinstance(mapping, dg.MultiToSingleDimensionPartitionMapping):
        described["partition_dimension_name"] = mapping.partition_dimension_name
    elif not isinstance(mapping, (dg.IdentityPartitionMapping, dg.AllPartitionMapping, dg.LastPartitionMapping)):
        raise TypeError(f"describe_mapping: no description of {type(mapping).__name__} yet; add one")
    return described


def describe_policy(policy: dg.BackfillPolicy | None) -> dict | None:
    if policy is None:
        return None
    return {"type": policy.policy_type.value, "max_partitions_per_run": policy.max_partitions_per_run}


def describe_asset(defs: dg.Definitions, graph, spec: dg.AssetSpec) -> dict:
    assets_def = defs.resolve_assets_def(spec.key)
    deps = {}
    for dep in spec.deps:
        upstream = graph.get(dep.asset_key).partitions_def
        partitioned = spec.partitions_def is not None or upstream is not None
        deps[_key(dep.asset_key)] = {
            # The mapping in effect: the declared one, else the one Dagster infers from both partitionings.
            "partition_mapping": describe_mapping(graph.get_partition_mapping(spec.key, dep.asset_key))
            if partitioned else None,
            "declared": dep.partition_mapping is not None,
        }
    condition = spec.automation_condition
    checks = [graph.get_check_spec(k) for k in graph.get_check_keys_for_assets({spec.key})]
    return {
        "deps": deps,
        "partitions": describe_partitions(spec.partitions_def),
        "group": spec.group_name,
        "kinds": sorted(spec.kinds),
        "owners": sorted(spec.owners),
        "tags": {k: v for k, v in spec.tags.items() if not k.startswith(KIND_TAG_PREFIX)},
        "code_version": spec.code_version,
        "pools": sorted({op.pool for op in assets_def.node_def.iterate_op_defs() if op.pool}),
        "backfill_policy": describe_policy(assets_def.backfill_policy),
        "automation_condition": None if condition is None else (condition.get_label() or condition.description),
        "checks": {
            c.name: {"blocking": c.blocking, "description": c.description,
                     "additional_deps": sorted(_key(d.asset_key) for d in c.additional_deps)}
            for c in checks
        },
    }


def describe_job(defs: dg.Definitions, graph, job) -> dict:
    selection = getattr(job, "selection", None)
    if not isinstance(selection, dg.AssetSelection):
        raise TypeError(f"describe_job: {job.name} is not an asset job (define_asset_job); describe it here")
    resolved = defs.resolve_job_def(job.name)
    return {
        "description": resolved.description,
        "assets": sorted(_key(k) for k in selection.resolve(graph)),
        "partitions": describe_partitions(resolved.partitions_def),
        # The policy a backfill of the job runs under: its assets' policies resolved (Dagster takes the
        # smallest max_partitions_per_run when they differ, and warns).
        "backfill_policy": describe_policy(resolved.backfill_policy),
    }


def serialise(defs: dg.Definitions) -> dict:
    """The definitions as plain, sorted data: one entry per asset key, job, schedule, sensor and resource."""
    graph = defs.resolve_asset_graph()
    specs = defs.resolve_all_asset_specs()
    sensors = {}
    for sensor in defs.sensors or []:
        sensors[sensor.name] = {
            "class": type(sensor).__name__,
            "minimum_interval_seconds": sensor.minimum_interval_seconds,
            "target_jobs": sorted(j.name for j in sensor.jobs) if sensor.has_jobs else [],
            "default_status": sensor.default_status.value,
        }
    return {
        "assets": {_key(spec.key): describe_asset(defs, graph, spec) for spec in specs},
        "jobs": {job.name: describe_job(defs, graph, job) for job in defs.jobs or []},
        "schedules": {
            s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone, "job": s.job_name,
                     "default_status": s.default_status.value}
            for s in defs.schedules or []
        },
        "sensors": sensors,
        "resources": {key: type(resource).__name__ for key, resource in (defs.resources or {}).items()},
    }


def snapshot_text(defs: dg.Definitions) -> str:
    return json.dumps(serialise(defs), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _default_environment(folder: Path, hash_seed: int) -> dict[str, str]:
    """This process's environment without the variables that shape the code location, as the conftest
    leaves it for every test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "DAGSTER_", "MLFLOW_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["DAGSTER_HOME"] = str(folder / "dagster_home")
    env["CHURN_DATA_DIR"] = str(folder / "data")
    env["PYTHONHASHSEED"] = str(hash_seed)
    (folder / "dagster_home").mkdir(parents=True, exist_ok=True)
    return env


def take_snapshot(folder: Path, hash_seed: int = 1) -> str:
    """The snapshot text of ``churn_dagster.definitions.defs`` loaded in a fresh interpreter with the defaults."""
    out = folder / "defs.json"
    done = subprocess.run([sys.executable, __file__, str(out)], cwd=ROOT, env=_default_environment(folder, hash_seed),
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"loading the definitions failed:\n{done.stderr[-6000:]}"
    return out.read_text()


@pytest.fixture(scope="module")
def current(tmp_path_factory) -> str:
    return take_snapshot(tmp_path_factory.mktemp("defs_snapshot"))


@pytest.fixture(scope="module")
def committed(current) -> str:
    if os.environ.get(UPDATE_VARIABLE, "").strip() not in ("", "0"):
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(current)
    if not SNAPSHOT.exists():
        pytest.fail(f"{SNAPSHOT.relative_to(ROOT)} is missing; create it with: {REGENERATE}")
    return SNAPSHOT.read_text()


def test_asset_keys_match_snapshot(current, committed):
    now, then = set(json.loads(current)["assets"]), set(json.loads(committed)["assets"])
    assert now == then, (
        f"asset keys differ from {SNAPSHOT.relative_to(ROOT)}: added {sorted(now - then)}, removed "
        f"{sorted(then - now)}. If intended, regenerate with: {REGENERATE}"
    )


def changed_entries(old: dict, new: dict) -> str:
    """``section: name, name`` for every entry that differs, so the diff's hunks can be placed."""
    lines = []
    for section in sorted(old.keys() | new.keys()):
        before, after = old.get(section, {}), new.get(section, {})
        names = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
        if names:
            lines.append(f"  {section}: {', '.join(names)}")
    return "\n".join(lines)


def test_definitions_match_snapshot(current, committed):
    if current != committed:
        changed = changed_entries(json.loads(committed), json.loads(current))
        diff = "".join(difflib.unified_diff(committed.splitlines(keepends=True), current.splitlines(keepends=True),
                                            fromfile=f"{SNAPSHOT.relative_to(ROOT)} (committed)",
                                            tofile="churn_dagster.definitions.defs (now)"))
        pytest.fail(f"the definitions differ from the snapshot in\n{changed}\n{diff}\n"
                    f"If intended, regenerate with: {REGENERATE}", pytrace=False)


def test_snapshot_is_deterministic(current, tmp_path):
    """A second fresh interpreter (another hash seed, another temporary folder) gives the same text."""
    assert take_snapshot(tmp_path, hash_seed=2) == current


if __name__ == "__main__":  # the fresh interpreter of take_snapshot
    from churn_dagster.definitions import build_definitions

    Path(sys.argv[1]).write_text(snapshot_text(build_definitions()))
