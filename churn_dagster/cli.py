"""``churn-dagster``: generate synthetic data, check its calibration, and run the graph through Dagster.

A thin layer: ``materialize`` executes the code location's own jobs in the Dagster instance under
``DAGSTER_HOME``, so every run shows up in the UI. ``--source`` and ``--data-dir`` set the same environment
variables that configure the resources for ``dagster dev``.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path


def _dagster_home() -> Path:
    """DAGSTER_HOME, defaulting to the current folder when it holds the project's dagster.yaml."""
    home = os.environ.get("DAGSTER_HOME")
    if home:
        return Path(home)
    if Path("dagster.yaml").exists():
        os.environ["DAGSTER_HOME"] = str(Path.cwd())
        return Path.cwd()
    raise SystemExit(
        "DAGSTER_HOME is not set and there is no dagster.yaml here; run from the project folder or "
        "`export DAGSTER_HOME=/path/to/churn_dagster`"
    )


def _generate(args: argparse.Namespace) -> None:
    from churn_dagster.synth.generator import generate

    summary = generate(
        args.out, users=args.users, days=args.days, start_date=args.start_date, seed=args.seed, compress=args.gzip
    )
    print(f"wrote {summary.out_dir}:")
    for stem, path in summary.paths.items():
        print(f"  {path.name:<26} {summary.rows[stem]:>12,} rows")
    if args.start_date != date(2019, 11, 1) or args.days != 30:
        last = args.start_date.toordinal() + args.days - 1
        print(
            f"non-default calendar: export CHURN_FIRST_DAY={args.start_date} "
            f"CHURN_LAST_DAY={date.fromordinal(last)} before materializing"
        )


def _land(args: argparse.Namespace) -> None:
    from churn_dagster.synth.landing import land_days

    first, last = (date.fromisoformat(d) for d in args.days.split(":"))
    days = [date.fromordinal(o) for o in range(first.toordinal(), last.toordinal() + 1)]
    for folder in land_days(args.source, args.landing, days, args.start_date):
        print(f"delivered {folder}")


def _calibrate(args: argparse.Namespace) -> None:
    from churn_dagster.synth.calibrate import calibration_report, format_report

    figures = calibration_report(Path(args.source))
    print(format_report(figures))
    if not all(f.within_tolerance for f in figures):
        sys.exit(1)


def _materialize(args: argparse.Namespace) -> None:
    os.environ["CHURN_SOURCE_DIR"] = str(Path(args.source).resolve())
    if args.data_dir:
        os.environ["CHURN_DATA_DIR"] = str(Path(args.data_dir).resolve())
    home = _dagster_home()

    import dagster as dg

    from churn_dagster.defs.partitions import CALENDAR
    from churn_dagster.defs.runner import RunFailed, data_graph_steps, run_steps, whole_graph_steps
    from churn_dagster.definitions import defs

    data_dir = Path(defs.resources["lake"].data_dir)
    steps = data_graph_steps(CALENDAR) if args.data_only else whole_graph_steps(CALENDAR)
    with dg.DagsterInstance.get() as instance:
        try:
            run_steps(defs, instance, steps)
        except RunFailed as exc:
            raise SystemExit(str(exc)) from exc
    lines = [
        f"outputs under {data_dir}",
        "  raw/<table>/day=YYYY-MM-DD/data.parquet        typed source tables (quarantine/ holds rejected rows)",
        "  daily/user_day_activity/day=.../data.parquet",
        "  cohorts/<table>/cohort=YYYY-MM-DD/data.parquet cohort_users, user_splits, label_scores, sessions,",
        "                                                 static_features, kpi_features",
        "  tensors/cohort=YYYY-MM-DD/                     sequences.npy, offsets.npy, static.npy, users.parquet",
    ]
    if not args.data_only:
        lines += [
            "  models/<model>/                                metrics.json, test_predictions.parquet",
            "  reports/evaluation/report.md                   model comparison, figures, explanations",
            "  scores/churn_risk_scores.{parquet,csv}         churn risk of the latest observation window",
            f"MLflow runs and registry: {defs.resources['mlflow'].tracking_uri}",
            f"  mlflow ui --backend-store-uri {defs.resources['mlflow'].tracking_uri} --host 127.0.0.1",
        ]
    lines.append(f"Dagster runs are recorded under DAGSTER_HOME={home}; browse them with `dagster dev`.")
    print("\n" + "\n".join(lines))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="churn-dagster", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write the six NCM files of a synthetic population")
    gen.add_argument("--out", required=True, type=Path, help="folder to write the CSV files into")
    gen.add_argument("--users", type=int, default=20_000)
    gen.add_argument("--days", type=int, default=30)
    gen.add_argument("--start-date", type=date.fromisoformat, default=date(2019, 11, 1))
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--gzip", action="store_true", help="write .csv.gz files")
    gen.set_defaults(func=_generate)

    land = sub.add_parser("land", help="deliver generated data day by day into a landing folder (for the sensor)")
    land.add_argument("--source", required=True, type=Path, help="folder written by `generate`")
    land.add_argument("--landing", required=True, type=Path, help="landing folder watched by landing_sensor")
    land.add_argument("--days", required=True, help="FIRST:LAST, e.g. 2019-11-01:2019-11-21")
    land.add_argument("--start-date", type=date.fromisoformat, default=date(2019, 11, 1), help="the day of dt 1")
    land.set_defaults(func=_land)

    cal = sub.add_parser("calibrate", help="compare a generated set with the real log's published figures")
    cal.add_argument("--source", required=True, type=Path)
    cal.set_defaults(func=_calibrate)

    mat = sub.add_parser("materialize", help="run the whole graph: every day, every cohort, models, report, scores")
    mat.add_argument("--source", required=True, type=Path, help="folder with the six published files")
    mat.add_argument("--data-dir", type=Path, help="output root (default: $CHURN_DATA_DIR or ./data)")
    mat.add_argument("--data-only", action="store_true", help="stop after the data assets (no training)")
    mat.set_defaults(func=_materialize)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
