"""Byte identity at full scale: the SHA-256 of every file a build wrote, and where two builds disagree.

A re-run must write the same bytes, and a cohort built in a range must equal the same cohort built in another
range. The tests check that on small sets; the benchmark checks it on the full-scale lake, where a floating-
point sum that varies with the order of parallel aggregation shows up (about one value in a million lies
close enough to a rounding boundary; see ``storage.duck.exact_sum``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digests(data: Path) -> dict[str, str]:
    """SHA-256 of every file under ``data`` by relative path, except hidden folders (DuckDB's spill files)."""
    found = {}
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        relative = path.relative_to(data)
        if any(part.startswith(".") for part in relative.parts):
            continue
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        found[relative.as_posix()] = digest.hexdigest()
    return found


def differing(builds: list[dict[str, str]]) -> tuple[int, list[str]]:
    """(files the builds share, the shared files whose bytes differ between any two of them), sorted."""
    shared = set.intersection(*(set(b) for b in builds)) if builds else set()
    return len(shared), sorted(f for f in shared if len({b[f] for b in builds}) > 1)
