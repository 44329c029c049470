"""``churn-dagster``: generate synthetic data, check its calibration, and run the graph through Dagster.

A thin layer: ``materialize`` executes the code location's own jobs in the Dagster instance under
``DAGSTER_HOME``, so every run shows up in the UI. ``--source`` and ``--data-dir`` set the same environment
variables that configure the resources for ``dagster dev``.

What went wrong is one line on stderr: the file, line and column of bad input, the variable or option and
its allowed range, the failed check, or for anything unforeseen the exception and the run, with the hint
that ``--verbose`` shows the traceback. Exit status: 0 done, 1 a run failed (or a blocking check did),
2 bad arguments or settings (nothing was run), 130 / 143 stopped by Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from datetime import date
from pathlib import Path

from churn_dagster.errors import RunFailed, UserError
from churn_dagster.interrupts import Interrupted, stop_signals
from churn_dagster.settings import SettingsError, settings_from_env
from churn_dagster.studies.trends.ml.hyperparameters import TREND_SEEDS


class _Parser(argparse.ArgumentParser):
    """Usage errors on one line; the full usage is one ``--help`` away."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# Argument types whose errors state the allowed values; argparse prints them as "argument --users: ...".
def _whole(low: int, high: int | None = None):
    def parse(text: str) -> int:
        try:
            if int(text) >= low and (high is None or int(text) <= high):
                return int(text)
        except ValueError:
            pass
        allowed = f", at least {low}" if high is None else f" from {low} to {high}"
        raise argparse.ArgumentTypeError(f"expected a whole number{allowed}; got {text!r}")

    return parse


def _positive(text: str) -> float:
    try:
        if 0 < float(text) < 100:
            return float(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected a number above 0 and below 100; got {text!r}")


def _iso_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date such as 2019-11-01; got {text!r}") from None


def _day_range(text: str) -> tuple[date, date]:
    try:
        first, last = (date.fromisoformat(part) for part in text.split(":"))
        if first <= last:
            return first, last
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected FIRST:LAST, two ISO dates in order such as 2019-11-01:2019-11-21; "
                                     f"got {text!r}")


def _folder(text: str) -> Path:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"no such folder: {text}")
    return Path(text)


def _dagster_home() -> Path:
    """DAGSTER_HOME, defaulting to the current folder when it holds the project's dagster.yaml."""
    home = os.environ.get("DAGSTER_HOME")
    if home:
        if not Path(home).is_dir():
            raise SettingsError([f"DAGSTER_HOME={home} is not a folder; create it (mkdir -p {home}) or point "
                                 "DAGSTER_HOME at the project folder, which holds its dagster.yaml"])
        return Path(home)
    if Path("dagster.yaml").exists():
        return Path.cwd()
    hint = "run from the project folder or `export DAGSTER_HOME=/path/to/churn_dagster`"
    raise SettingsError([f"DAGSTER_HOME is not set and there is no dagster.yaml here; {hint}"])


def _mechanisms(text: str) -> list[str]:
    """The names of ``--without``, checked by the one place that knows them (``mechanisms.without``)."""
    from churn_dagster.synth.mechanisms import without

    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        without(names)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return names


def _generate(args: argparse.Namespace) -> None:
    from churn_dagster.synth.generator import generate
    from churn_dagster.synth.mechanisms import without

    summary = generate(
        args.out, users=args.users, days=args.days, start_date=args.start_date, seed=args.seed, compress=args.gzip,
        params=without(args.without),
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


def _generate_events(args: argparse.Namespace) -> None:
    from churn_dagster.synth.event_logs import LogSpec, generate_log

    rows = generate_log(LogSpec(args.shape, users=args.users, days=args.days, start=args.start_date, seed=args.seed,
                                rate=args.rate), args.out)
    print(f"wrote {args.out}: {rows:,} events of {args.users:,} users over {args.days} days from {args.start_date}")


def _land(args: argparse.Namespace) -> None:
    from churn_dagster.synth.landing import land_days

    first, last = args.days
    days = [date.fromordinal(o) for o in range(first.toordinal(), last.toordinal() + 1)]
    for folder in land_days(args.source, args.landing, days, args.start_date):
        print(f"delivered {folder}")


def _calibrate(args: argparse.Namespace) -> None:
    from churn_dagster.synth.calibrate import calibration_report, format_report
    from churn_dagster.synth.calibrate_sessions import calibration_session_report

    figures = calibration_report(Path(args.source))
    print(format_report(figures))
    sessions = calibration_session_report(Path(args.source))
    print("\nSessions (targets from the real log's first 10,000 rows; within +-30%):")
    print(format_report(sessions))
    if not all(f.within_tolerance for f in [*figures, *sessions]):
        sys.exit(1)


def _materialize(args: argparse.Namespace) -> None:
    # The command's own --source and --data-dir, over the environment: the settings of this process and the
    # environment its webserver's code location loads with. Nothing is written back to os.environ.
    environ = {**os.environ, "CHURN_SOURCE_DIR": str(args.source.resolve()),
               **({"CHURN_DATA_DIR": str(args.data_dir.resolve())} if args.data_dir else {})}
    for flag, value in (("--max-epochs", args.max_epochs), ("--trend-seeds", args.trend_seeds)):
        if args.data_only and value is not None:
            raise SettingsError([f"{flag} shapes the training, which --data-only leaves out"])
    settings = settings_from_env(environ)  # every CHURN_* variable, before Dagster and the code location load
    home = _dagster_home()

    import dagster as dg

    from churn_dagster.definitions import build_definitions
    from churn_dagster.runs.launch import launch_steps
    from churn_dagster.runs.runner import (
        data_graph_steps,
        select_steps,
        training_config,
        trend_training_config,
        whole_graph_steps,
    )
    from churn_dagster.studies.continuation.config import (
        epoch_cap_config as continuation_epoch_cap,
    )

    defs = build_definitions(settings)
    resources = defs.resources
    tracking_uri = resources["mlflow"].tracking_uri
    if args.data_only:
        steps = data_graph_steps(settings.calendar)
    else:
        steps = whole_graph_steps(settings, training_config(args.max_epochs),
                                  trend_training_config(args.max_epochs, args.trend_seeds),
                                  continuation_epoch_cap(args.max_epochs))
    if args.select:
        steps = select_steps(defs, steps, args.select)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        launch_steps(steps, instance, home, defs, settings, environ, verbose=args.verbose)
    lines = [
        f"outputs under {settings.data_dir}",
        "  raw/<table>/day=YYYY-MM-DD/data.parquet        typed source tables (quarantine/ holds rejected rows)",
        "  daily/user_day_activity/day=.../data.parquet",
        "  cohorts/<table>/cohort=YYYY-MM-DD/data.parquet cohort_users, user_splits, label_scores,",
        "                                                 window_impressions, sessions, static_features,",
        "                                                 kpi_features, continuation_requests/_examples",
        "  tensors/cohort=YYYY-MM-DD/                     sequences.npy, offsets.npy, static.npy, users.parquet",
    ]
    if not args.data_only:
        lines += [
            "  models/<model>/cohort=YYYY-MM-DD/              metrics.json, test_predictions.parquet",
            "  reports/evaluation/cohort=YYYY-MM-DD/report.md model comparison, figures, explanations",
            "  models/trend_<model>_<task>/cohort=YYYY-MM-DD/ summary.json, seed_<n>/metrics.json (trend models)",
            "  reports/trends/cohort=YYYY-MM-DD/report.md     trend models beside the DIGMN paper",
            "  reports/continuation/cohort=YYYY-MM-DD/        session continuation: AUC per model and horizon",
            "  scores/window=YYYY-MM-DD/churn_risk_scores.*   churn risk of the newest observation window",
            "  case_study/report/report.md                    the NCM case study: our models beside its figures",
            f"MLflow runs and registry: {tracking_uri}",
            f"  mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1",
        ]
    lines.append(f"Dagster runs are recorded under DAGSTER_HOME={home}; browse them with `dagster dev`.")
    print("\n" + "\n".join(lines))


def build_parser() -> argparse.ArgumentParser:
    verbose_help = "on failure, show the full traceback (and Dagster's own console log)"
    parser = _Parser(prog="churn-dagster", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help=verbose_help)
    # Also accepted after the subcommand; SUPPRESS keeps a subcommand from resetting the global flag.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", parents=[verbose], help="write the six NCM files of a synthetic population")
    gen.add_argument("--out", required=True, type=Path, help="folder to write the CSV files into")
    gen.add_argument("--users", type=_whole(1), default=20_000)
    gen.add_argument("--days", type=_whole(1), default=30)
    gen.add_argument("--start-date", type=_iso_day, default=date(2019, 11, 1))
    gen.add_argument("--seed", type=_whole(0), default=0)
    gen.add_argument("--gzip", action="store_true", help="write .csv.gz files")
    gen.add_argument("--without", type=_mechanisms, default=[], metavar="NAMES",
                     help="comma-separated behavioural mechanisms to switch off (docs/SYNTHETIC.md): "
                          "habits, session_tail, reactions, intents, cold_start")
    gen.set_defaults(func=_generate)

    events = sub.add_parser("generate-events", parents=[verbose],
                            help="write an event log of another shape (purchases, ratings, clicks) for the "
                            "event-log component (docs/EVENT_LOGS.md)")
    events.add_argument("--shape", required=True, choices=("purchases", "ratings", "clicks"))
    events.add_argument("--out", required=True, type=Path, help="the file to write (.csv or .parquet)")
    events.add_argument("--users", type=_whole(1), default=5_000)
    events.add_argument("--days", type=_whole(1), default=120)
    events.add_argument("--start-date", type=_iso_day, default=date(2024, 1, 1))
    events.add_argument("--seed", type=_whole(0), default=0)
    events.add_argument("--rate", type=_positive, default=0.35,
                        help="the median user's events per day at signup (default 0.35)")
    events.set_defaults(func=_generate_events)

    land = sub.add_parser("land", parents=[verbose],
                          help="deliver generated data day by day into a landing folder (for the sensor)")
    land.add_argument("--source", required=True, type=_folder, help="folder written by `generate`")
    land.add_argument("--landing", required=True, type=Path, help="landing folder watched by landing_sensor")
    land.add_argument("--days", required=True, type=_day_range, help="FIRST:LAST, e.g. 2019-11-01:2019-11-21")
    land.add_argument("--start-date", type=_iso_day, default=date(2019, 11, 1), help="the day of dt 1")
    land.set_defaults(func=_land)

    cal = sub.add_parser("calibrate", parents=[verbose],
                         help="compare a generated set with the real log's published figures")
    cal.add_argument("--source", required=True, type=_folder)
    cal.set_defaults(func=_calibrate)

    mat = sub.add_parser("materialize", parents=[verbose],
                         help="run the whole graph: every day, every cohort, models, report, scores, trend models")
    mat.add_argument("--source", required=True, type=_folder, help="folder with the six published files")
    mat.add_argument("--data-dir", type=Path, help="output root (default: $CHURN_DATA_DIR or ./data)")
    mat.add_argument("--data-only", action="store_true", help="stop after the data assets (no training)")
    mat.add_argument("--select", metavar="EXPR",
                     help="only these assets, in Dagster's selection syntax: 'lstm_churn', 'group:models', "
                     "'key:lstm_*', 'key:lstm_churn or key:hybrid_lstm_churn', 'group:models and key:*_churn'")
    mat.add_argument("--max-epochs", type=_whole(1), metavar="N",
                     help="cap the sequence models' epochs (LSTM default 20, hybrid LSTM and trend networks at "
                     "most 50, continuation LSTM at most 10)")
    mat.add_argument("--trend-seeds", type=_whole(1, len(TREND_SEEDS)), metavar="N",
                     help=f"train each trend model with the first N of its seeds (1 to {len(TREND_SEEDS)}; default all "
                     f"{len(TREND_SEEDS)}, the DIGMN paper's mean ± std over seeds)")
    mat.set_defaults(func=_materialize)
    return parser


def _summary(exc: Exception) -> str:
    """An unforeseen exception on one line: its class and the first line of its message."""
    if isinstance(exc, RunFailed):
        return str(exc)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _report(exc: Exception, verbose: bool) -> int:
    """Print ``exc`` for the terminal, one line (after the traceback with ``--verbose``); return the exit status."""
    if verbose and not isinstance(exc, Interrupted):
        details = exc.details if isinstance(exc, RunFailed) else "".join(traceback.format_exception(exc))
        print(details.rstrip(), file=sys.stderr)
    if isinstance(exc, Interrupted):
        line, status = str(exc), exc.exit_code
    elif isinstance(exc, UserError) or (isinstance(exc, RunFailed) and exc.user_error):
        line, status = f"error: {exc}", getattr(exc, "exit_code", 1)
    else:
        line, status = f"error: {_summary(exc)}" + ("" if verbose else "; --verbose shows the traceback"), 1
    print(f"churn-dagster: {line}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with stop_signals() as signals:
        try:
            args.func(args)
            return
        except KeyboardInterrupt:
            status = _report(Interrupted(signals.acknowledge(), f"{args.command} did not finish"), args.verbose)
        except Exception as exc:  # noqa: BLE001 -- the one place every failure becomes a line and an exit status
            status = _report(exc, args.verbose)
    sys.exit(status)


if __name__ == "__main__":
    main()
