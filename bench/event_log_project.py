"""A dg project of its own in a temporary folder, holding event-log instances as a user writes them
(``docs/EVENT_LOGS.md``): ``pyproject.toml`` with ``[tool.dg]``, a package whose ``definitions.py`` merges
churn_dagster's resources with its defs folder, and one ``defs.yaml`` per instance."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import dagster as dg

DEFINITIONS = '''\
from pathlib import Path

import dagster as dg

from churn_dagster.definitions import shared_resources


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(shared_resources(), dg.load_from_defs_folder(path_within_project=Path(__file__).parents[1]))
'''


def write_project(folder: Path, instances: dict[str, str]) -> tuple[Path, str]:
    """The project folder and its package name (unique, so projects of several tests never share a module)."""
    package = f"elp_{uuid.uuid4().hex[:10]}"
    root = folder / "project"
    (root / package / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [project]
        name = "{package}"
        version = "0"
        [tool.dg]
        directory_type = "project"
        [tool.dg.project]
        root_module = "{package}"
        defs_module = "{package}.defs"
        """))
    (root / package / "__init__.py").write_text("")
    (root / package / "defs" / "__init__.py").write_text("")
    (root / package / "definitions.py").write_text(DEFINITIONS)
    for name, text in instances.items():
        (root / package / "defs" / name).mkdir()
        (root / package / "defs" / name / "defs.yaml").write_text(textwrap.dedent(text))
    return root, package


def load(root: Path, package: str) -> dg.Definitions:
    """The project's code location, as ``dg`` loads it."""
    sys.path.insert(0, str(root))
    try:
        module = __import__(f"{package}.definitions", fromlist=["defs"])
        return module.defs()
    finally:
        sys.path.remove(str(root))


def materialize(defs: dg.Definitions, keys: list[list[str]], instance: dg.DagsterInstance,
                partition_key: str | None = None, partition_range: tuple[str, str] | None = None,
                run_config: dict | None = None):
    """Materialize ``keys`` (each a key path) in-process with the code location's resources."""
    wanted = [dg.AssetKey(k) for k in keys]
    assets = [a for a in defs.assets if any(k in wanted for k in a.keys)]
    tags = ({"dagster/asset_partition_range_start": partition_range[0],
             "dagster/asset_partition_range_end": partition_range[1]} if partition_range else None)
    return dg.materialize(assets, resources=defs.resources, instance=instance, selection=wanted,
                          partition_key=partition_key, tags=tags, run_config=run_config)
