"""The markdown tables of docs/BENCHMARKS.md, computed from the raw results of :mod:`bench.full_scale`.

Separate from the runs so that the tables can be re-made from a saved ``results.json`` (``python -m
bench.report results.json``) and tested without running anything. Every figure is a median over the
repetitions unless a column says otherwise; peak RSS is the largest of the repetitions.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict

from bench.digests import differing

INGEST = ("raw_impressions", "raw_mlog_stats", "raw_creator_stats")
# The steps that compute what the pandas and Polars baselines compute (bench.baseline_common); the sessions
# read the cohorts' window_impressions, so that extract counts too, though the KPI features, continuation
# requests and trend inputs read it as well.
COVERED = (*INGEST, "user_day_activity", "cohort_users", "user_splits", "label_scores", "window_impressions", "sessions")
BASELINES = {"floor": "floor: bare DuckDB CSV → Parquet (the COPY alone)", "pandas": "pandas (whole process)",
             "polars": "Polars, streaming engine (whole process)"}


def median(values) -> float:
    return statistics.median(values)


def runs(values) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def step_walls(graph: list[dict]) -> dict[str, list[float]]:
    """Each step's seconds in every repetition, in the order the steps ran."""
    walls = defaultdict(list)
    for rep in graph:
        for step in rep["steps"]:
            walls[step["step"]].append(step["seconds"])
    return dict(walls)


def step_peaks(graph: list[dict]) -> dict[str, float]:
    peaks = defaultdict(float)
    for rep in graph:
        for step in rep["steps"]:
            peaks[step["step"]] = max(peaks[step["step"]], step["peak_rss_gb"])
    return peaks


def peak(graph: list[dict]) -> float:
    return max(rep["process_peak_rss_gb"] for rep in graph)


def cost_per_million(graph: list[dict]) -> float:
    """Seconds of the whole one-process graph per million impressions read."""
    return median(rep["wall"] for rep in graph) / (graph[0]["impressions"] / 1e6)


def stage_table(graph: list[dict]) -> list[str]:
    jobs = {step["step"]: step["job"] for rep in graph for step in rep["steps"]}
    walls, peaks = step_walls(graph), step_peaks(graph)
    lines = ["| step | run | wall s (median) | runs | peak RSS GB (max) |", "|---|---|---|---|---|"]
    lines += [f"| {s} | {jobs[s]} | {median(w):.1f} | {runs(w)} | {peaks[s]:.2f} |" for s, w in walls.items()]
    overhead = [rep["wall"] - sum(s["seconds"] for s in rep["steps"]) for rep in graph]
    lines.append(f"| start-up and between steps | | {median(overhead):.1f} | {runs(overhead)} | |")
    whole = [rep["wall"] for rep in graph]
    lines.append(f"| **whole data graph, one process** | | **{median(whole):.1f}** | {runs(whole)} | "
                 f"**{peak(graph):.2f}** |")
    return lines


def baseline_table(results: dict) -> list[str]:
    lines = ["| baseline | wall s (median) | runs | peak RSS GB (max) | phases s (median) |", "|---|---|---|---|---|"]
    for name, label in BASELINES.items():
        reps = results[name]
        if any(r["wall"] is None for r in reps):
            lines.append(f"| {label} | stopped: {next(r['stopped'] for r in reps if r['wall'] is None)} | | "
                         f"{max(r['peak_gb'] for r in reps):.2f} | |")
            continue
        walls = [baseline_wall(name, r) for r in reps]
        phases = ", ".join(f"{p} {median(r['phases'][p] for r in reps):.1f}" for p in reps[0]["phases"])
        peak_gb = max(r["peak_gb"] for r in reps)
        lines.append(f"| {label} | {median(walls):.1f} | {runs(walls)} | {peak_gb:.2f} | {phases} |")
    return lines


def baseline_wall(name: str, rep: dict) -> float:
    """The floor is its COPY alone; pandas and Polars are their whole process, start-up included."""
    return rep["seconds"] if name == "floor" else rep["wall"]


def scaling_table(results: dict) -> list[str]:
    """The 1× point is the main repetitions; the others are the ``--scale`` sources."""
    scaling = {"1": {"source": results["source"], "graph": results["graph"]}, **results["scaling"]}
    base = cost_per_million(results["graph"])
    lines = ["| scale | source | impressions | wall s (median) | runs | peak RSS GB | s per M impressions | vs 1× |",
             "|---|---|---|---|---|---|---|---|"]
    for factor, entry in sorted(scaling.items(), key=lambda item: float(item[0])):
        graph, cost = entry["graph"], cost_per_million(entry["graph"])
        walls = [rep["wall"] for rep in graph]
        lines.append(f"| {factor}× | `{entry['source']}` | {graph[0]['impressions']:,} | {median(walls):.1f} | "
                     f"{runs(walls)} | {peak(graph):.2f} | {cost:.2f} | {cost / base:.2f} |")
    return lines


def targets(results: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for every target of the speed issue (round two); met is None when not measured."""
    graph, walls = results["graph"], step_walls(results["graph"])
    floor = median(r["seconds"] for r in results["floor"])
    ingest = sum(median(walls[s]) for s in INGEST)
    whole = median(r["wall"] for r in graph)
    ours = sum(median(walls[s]) for s in COVERED)
    rows = [("ingest ≤ 2.5× the floor", f"{ingest:.1f} s / {floor:.1f} s = {ingest / floor:.2f}×",
             ingest <= 2.5 * floor),
            ("whole data graph ≤ 6× the floor", f"{whole:.1f} s / {floor:.1f} s = {whole / floor:.2f}×",
             whole <= 6 * floor)]
    polars = None
    for name, most in (("pandas", 1.0), ("polars", 1.5)):
        reps = results[name]
        wanted = "faster than pandas" if name == "pandas" else "within 1.5× of Polars"
        if any(r["wall"] is None for r in reps):
            rows.append((f"{wanted} on the steps it covers", f"{name} stopped", None))
            continue
        theirs = median(r["wall"] for r in reps)
        polars = theirs if name == "polars" else polars
        measured = (f"ours (its {len(COVERED)} steps) {ours:.1f} s vs {name} (whole process) {theirs:.1f} s: "
                    f"ours / {name} = {ours / theirs:.2f}")
        rows.append((f"{wanted} on the steps it covers", measured, ours < theirs * most))
    rows.append(("peak RSS ≤ 6 GB at 1×", f"{peak(graph):.2f} GB", peak(graph) <= 6))
    double = results["scaling"].get("2")
    if double is None:
        rows += [("peak RSS ≤ 8 GB at 2×", "no 2× source given", None),
                 ("cost per row at 2× within 15% of 1×", "no 2× source given", None)]
    else:
        ratio = cost_per_million(double["graph"]) / cost_per_million(graph)
        rows += [("peak RSS ≤ 8 GB at 2×", f"{peak(double['graph']):.2f} GB", peak(double["graph"]) <= 8),
                 ("cost per row at 2× within 15% of 1×", f"2× / 1× = {ratio:.2f}", ratio <= 1.15)]
    daily = results.get("daily")
    if not daily:
        rows += [("daily path ≤ 10% of a full build", "not measured", None),
                 ("daily path faster than Polars' full recompute", "not measured", None)]
    else:
        day = median(rep["wall"] for rep in daily)
        rows.append(daily_against_full_build(day, whole, results.get("full_build")))
        rows.append(("daily path faster than Polars' full recompute",
                     f"{day:.1f} s vs {polars:.1f} s" if polars else "Polars stopped",
                     day < polars if polars else None))
    return rows


def daily_against_full_build(day: float, whole: float, full_build: list[dict] | None) -> tuple[str, str, bool]:
    """One new day against a full build of every cohort the lake labels (the ``full_build`` runs); results
    from before that run was part of the benchmark compare with the seven cohorts of the whole graph."""
    seven = f"{day:.1f} s / {whole:.1f} s (the whole graph, cohorts dt 1-7) = {day / whole:.1%}"
    if not full_build:
        return "daily path ≤ 10% of a full build", seven, day <= 0.1 * whole
    full = median(rep["wall"] for rep in full_build)
    return ("daily path ≤ 10% of a full build",
            f"{day:.1f} s / {full:.1f} s (every cohort, dt 1-10) = {day / full:.1%}; against {seven}",
            day <= 0.1 * full)


def identity_lines(results: dict) -> list[str]:
    """Whether the repetitions wrote the same bytes, and the cohorts built in ranges of 7 and of 10 too."""
    pairs = [("the whole graph's repetitions", [r.get("digests") for r in results["graph"]]),
             ("the full builds' repetitions", [r.get("digests") for r in results.get("full_build", [])])]
    seven, ten = pairs[0][1][:1], pairs[1][1][:1]
    pairs.append(("cohorts dt 1-7 built in a range of 7 and of 10", seven + ten))
    lines = []
    for label, builds in pairs:
        if len(builds) < 2 or any(b is None for b in builds):
            continue
        shared, bad = differing(builds)
        verdict = "identical" if not bad else f"**{len(bad)} differ**: {', '.join(bad[:5])}"
        lines.append(f"- Byte identity, {label}: {shared} files compared, {verdict}.")
    return lines


def full_build_line(results: dict) -> str:
    reps = results.get("full_build")
    if not reps:
        return ""
    walls = [rep["wall"] for rep in reps]
    return (f"Full build of every cohort (snapshots, the 30 days, cohorts dt 1-10), one process: {median(walls):.1f} s "
            f"({runs(walls)}), peak RSS {peak(reps):.2f} GB.")


def targets_table(results: dict) -> list[str]:
    verdict = {True: "yes", False: "**no**", None: "not measured"}
    return ["| target | measured | met? |", "|---|---|---|",
            *(f"| {t} | {m} | {verdict[ok]} |" for t, m, ok in targets(results))]


def daily_line(results: dict) -> str:
    daily = results.get("daily")
    if not daily:
        return "One new day: not measured."
    walls = [rep["wall"] for rep in daily]
    steps = ", ".join(f"{s} {median(w):.1f}" for s, w in step_walls(daily).items())
    return (f"One new day through the daily path (its ingest, then what the cohort automation builds), one process: "
            f"{median(walls):.1f} s ({runs(walls)}); steps (s): {steps}.")


def render(results: dict) -> str:
    m = results["machine"]
    head = (f"Machine: {m['machine']}, {m['cpu']}, {m['cores']} cores, {m['ram_gb']:.0f} GB RAM; Python {m['python']}, "
            f"DuckDB {m['duckdb']}, pandas {m['pandas']}, Polars {m['polars']}, Dagster {m['dagster']}; "
            f"medians of {results['repeat']} runs.")
    sections = [head, "\n".join(stage_table(results["graph"])), "\n".join(baseline_table(results)),
                "\n".join(scaling_table(results)), "\n".join(targets_table(results)), daily_line(results),
                full_build_line(results), "\n".join(identity_lines(results))]
    return "\n\n".join(s for s in sections if s) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(render(json.load(f)))
