"""The package's import structure, read from the source with ``ast`` (nothing is imported).

Independent of where modules live: every ``.py`` under ``churn_dagster/`` is parsed, relative imports are
resolved, ``from churn_dagster.x import y`` counts as importing the submodule ``churn_dagster.x.y`` when
there is one, and imports inside functions count like top-level ones (a cycle through a function-level
import is still a cycle for the reader). The layout they pin down:

- ``domain/``, ``storage/``, ``synth/`` and the plain top-level modules (``settings``, ``errors``,
  ``interrupts``) hold facts and tools; ``core/`` is the Dagster kit every asset shares (partitions,
  resources, metadata, checks); ``stages/`` the shared data graph; ``training/`` the shared training kit;
  ``studies/`` the four task families; ``jobs``, ``automation``, ``definitions``, ``runs/`` and ``cli`` the top.
- Inside ``stages/``, ``training/`` and ``studies/``, a package's ``sql/`` and ``ml/`` hold its plain code.

Rules:

- no import cycle inside ``churn_dagster``;
- no private Dagster module (``dagster._...``, ``dagster_*._...``, ``from dagster import _x``, ``dg._x``)
  in ``churn_dagster/``, ``bench/`` or ``assets_tests/``;
- plain code (``domain/``, ``storage/``, ``synth/``, every ``sql/`` and ``ml/`` package, the plain top-level
  modules) imports no Dagster and no Dagster wiring: only other plain code;
- no study imports another study, and nothing shared (``core/``, ``stages/``, ``training/``, the plain code)
  imports a study;
- nothing imports upward: the stages not the training kit, and nothing below the top imports the top;
- production code never imports the synthetic generator ``churn_dagster.synth`` (only the CLI's ``generate``,
  ``land`` and ``calibrate`` do).
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "churn_dagster"
# The top of the package: what assembles the code location and drives it.
TOP = tuple(f"{PACKAGE}.{m}" for m in ("jobs", "automation", "definitions", "runs", "cli", "components"))
PLAIN_FOLDERS = ("domain", "storage", "synth")
PLAIN_TOP_MODULES = tuple(f"{PACKAGE}.{m}" for m in ("settings", "errors", "interrupts"))
STUDIES = f"{PACKAGE}.studies"
SYNTH = f"{PACKAGE}.synth"


@dataclass(frozen=True)
class Import:
    """One imported module (or ``module.name`` for ``from module import name``) at a source line."""

    source: str  # the importing module, dotted
    path: str  # its file, relative to the repository root
    line: int
    target: str  # the dotted module as written, relative imports resolved
    names: tuple[str, ...] = ()  # for ``from target import a, b``

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 > len(base):
        raise ValueError(f"relative import beyond the top of {module}")
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([target] if target else [])])


@cache
def imports_of(path: Path) -> tuple[Import, ...]:
    """Every import statement in ``path``, at any depth (functions, classes, ``if`` blocks included)."""
    module = module_name(path)
    rel = path.relative_to(ROOT).as_posix()
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
        if isinstance(node, ast.Import):
            found += [Import(module, rel, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                target = _resolve_relative(module, path.name == "__init__.py", node.level, node.module)
            found.append(Import(module, rel, node.lineno, target, tuple(a.name for a in node.names)))
    return tuple(found)


def private_dagster_uses(path: Path) -> list[str]:
    """``file:line name`` for each use of a private Dagster module or member in ``path``."""
    rel = path.relative_to(ROOT).as_posix()
    uses = []
    dagster_aliases = set()
    for imp in imports_of(path):
        top = imp.target.split(".")[0]
        if top != "dagster" and not top.startswith("dagster_"):
            continue
        if any(part.startswith("_") for part in imp.target.split(".")[1:]):
            uses.append(f"{imp.where()} {imp.target}")
        uses += [f"{imp.where()} {imp.target}.{name}" for name in imp.names if name.startswith("_")]
    tree = ast.parse(path.read_text(), filename=rel)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            dagster_aliases |= {(a.asname or a.name).split(".")[0] for a in node.names
                                if a.name.split(".")[0] == "dagster" or a.name.startswith("dagster_")}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in dagster_aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            uses.append(f"{rel}:{node.lineno} {node.value.id}.{node.attr}")
    return uses


@cache
def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in python_files(PACKAGE)}


def internal_targets(imp: Import) -> set[str]:
    """The package's modules that ``imp`` imports: ``from a.b import c`` is ``a.b.c`` where that is a module,
    else ``a.b``; ``import a.b.c`` is the longest existing module of ``a.b.c``."""
    modules = package_modules()
    if imp.target != PACKAGE and not imp.target.startswith(PACKAGE + "."):
        return set()
    targets = set()
    for name in imp.names or ("",):
        candidate = f"{imp.target}.{name}" if name and name != "*" else imp.target
        parts = candidate.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        if parts:
            targets.add(".".join(parts))
    return targets


@cache
def import_graph() -> dict[str, dict[str, Import]]:
    """module -> {imported module -> the first import statement that imports it}."""
    graph: dict[str, dict[str, Import]] = {m: {} for m in package_modules()}
    for module, path in package_modules().items():
        for imp in imports_of(path):
            for target in sorted(internal_targets(imp)):
                if target != module:
                    graph[module].setdefault(target, imp)
    return graph


def strongly_connected(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Tarjan's components of more than one module, each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(v: str) -> None:  # the package is a few hundred modules at most: recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(components)


def shortest_cycle(graph: dict[str, dict[str, Import]], component: list[str]) -> list[str]:
    """The shortest cycle through the component's first module, as a closed path."""
    start, members = component[0], set(component)
    parents: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v]):
            if w == start:
                path = [v]
                while parents[path[-1]] is not None:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if w in members and w not in parents:
                parents[w] = v
                queue.append(w)
    raise AssertionError(f"no cycle in the component {component}")


def describe_cycle(graph: dict[str, dict[str, Import]], cycle: list[str]) -> str:
    steps = [f"{a} -> {b} ({graph[a][b].where()})" for a, b in itertools.pairwise(cycle)]
    return "\n  ".join(steps)


def import_cycles() -> list[str]:
    graph = import_graph()
    return [describe_cycle(graph, shortest_cycle(graph, c)) for c in strongly_connected(graph)]


def in_folder(module: str, *packages: str) -> bool:
    return any(module == f"{PACKAGE}.{p}" or module.startswith(f"{PACKAGE}.{p}.") for p in packages)


def under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def is_plain(module: str) -> bool:
    """Code without Dagster: domain/, storage/, synth/, the plain top-level modules, and every sql/ or ml/
    package of a stage, the training kit or a study."""
    parts = module.split(".")
    return (in_folder(module, *PLAIN_FOLDERS) or module in PLAIN_TOP_MODULES
            or (in_folder(module, "stages", "training", "studies") and ("sql" in parts[2:] or "ml" in parts[2:])))


def study_of(module: str) -> str | None:
    """``trends`` for ``churn_dagster.studies.trends.ml.lda``; None outside ``studies/``."""
    parts = module.split(".")
    return parts[2] if module.startswith(STUDIES + ".") and len(parts) > 2 else None


def internal_edges() -> list[tuple[str, str, Import]]:
    return [(m, t, imp) for m, targets in import_graph().items() for t, imp in sorted(targets.items())]


def layering_offenders() -> list[str]:
    """Every import that breaks the layout (module docstring): plain code importing Dagster wiring, a study
    importing another, shared code importing a study, a stage importing the training kit, anything below the
    top importing the top."""
    found = []
    for m, t, imp in internal_edges():
        why = None
        if is_plain(m) and not is_plain(t):
            why = "plain code imports Dagster wiring"
        elif study_of(m) and study_of(t) and study_of(m) != study_of(t):
            why = "a study imports another study"
        elif study_of(t) and not study_of(m) and not under(m, *TOP):
            why = "shared code imports a study"
        elif in_folder(m, "stages") and in_folder(t, "training"):
            why = "a stage imports the training kit"
        elif under(t, *TOP) and not under(m, *TOP):
            why = "an import of the top from below it"
        if why:
            found.append(f"{imp.where()} {t}: {why}")
    return sorted(found)


def private_offenders() -> list[str]:
    return sorted(use for folder in (PACKAGE, "bench", "assets_tests") for p in python_files(folder)
                  for use in private_dagster_uses(p))


def synth_offenders() -> list[str]:
    return sorted(f"{imp.where()} {t}" for m, p in package_modules().items() if not in_folder(m, "synth") and m != f"{PACKAGE}.cli"
                  for imp in imports_of(p) for t in sorted(internal_targets(imp))
                  if t == SYNTH or t.startswith(SYNTH + "."))


def test_every_module_parses_and_is_seen():
    modules = package_modules()
    assert f"{PACKAGE}.definitions" in modules and f"{PACKAGE}.studies.trends.ml.digmn" in modules
    assert all(imports_of(p) is not None for p in modules.values())


def test_import_graph_resolves_relative_and_submodule_imports():
    """The resolution rules themselves, on the real package: ``from churn_dagster.x import y`` names the
    submodule when there is one, the package otherwise."""
    imp = Import("churn_dagster.a", "a.py", 1, "churn_dagster.storage", ("lake", "not_a_module"))
    assert internal_targets(imp) == {"churn_dagster.storage.lake", "churn_dagster.storage"}
    deep = Import("m", "m.py", 1, "churn_dagster.training.ml.metrics.something")
    assert internal_targets(deep) == {"churn_dagster.training.ml.metrics"}
    assert internal_targets(Import("m", "m.py", 1, "dagster")) == set()
    assert _resolve_relative("churn_dagster.training.ml.train", False, 1, "metrics") == "churn_dagster.training.ml.metrics"
    assert _resolve_relative("churn_dagster.training.ml", True, 1, "metrics") == "churn_dagster.training.ml.metrics"
    assert _resolve_relative("churn_dagster.training.ml.train", False, 3, None) == "churn_dagster"
    graph = {"a": {"b": Import("a", "a.py", 3, "b")}, "b": {"c": Import("b", "b.py", 4, "c")},
             "c": {"a": Import("c", "c.py", 5, "a")}, "d": {"a": Import("d", "d.py", 1, "a")}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert shortest_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_the_layout_classifies_modules_as_the_tree_says():
    """What counts as plain code and which study a module belongs to, on modules of the real tree."""
    assert is_plain("churn_dagster.studies.trends.ml.lda") and is_plain("churn_dagster.stages.cohorts.sql.labels")
    assert is_plain("churn_dagster.domain.calendar") and is_plain("churn_dagster.settings")
    assert not is_plain("churn_dagster.studies.trends.labels") and not is_plain("churn_dagster.core.partitions")
    assert not is_plain("churn_dagster.training.registry")
    assert study_of("churn_dagster.studies.trends.ml.lda") == "trends" and study_of("churn_dagster.studies") is None
    assert study_of("churn_dagster.training.ml.train") is None


def test_no_import_cycles():
    cycles = import_cycles()
    assert not cycles, "import cycles inside churn_dagster:\n  " + "\n\n  ".join(cycles)


def test_no_private_dagster_imports():
    offenders = private_offenders()
    assert not offenders, "private Dagster modules (use the public `dagster` API):\n" + "\n".join(offenders)


def test_plain_code_imports_no_dagster():
    offenders = sorted(f"{imp.where()} {imp.target}" for m, p in package_modules().items() if is_plain(m)
                       for imp in imports_of(p)
                       if imp.target.split(".")[0] == "dagster" or imp.target.startswith("dagster_"))
    assert not offenders, ("Dagster imported by plain code (domain/, storage/, synth/, sql/, ml/, top-level):\n"
                           + "\n".join(offenders))


def test_studies_are_isolated_and_nothing_imports_upward():
    offenders = layering_offenders()
    assert not offenders, "imports against the layout:\n" + "\n".join(offenders)


def test_production_code_imports_no_synth():
    offenders = synth_offenders()
    assert not offenders, "production code imports the synthetic generator:\n" + "\n".join(offenders)
