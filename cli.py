"""Recsight's command line: the public interface described in DESIGN.md.

Each sub-command parses its arguments and calls one library function: a use case of workflows/
(train, evaluate, recommend, report), the ingest and synthetic shop of analytics/, or the users
file of service/; it never reaches into models/ or explain/ for a step. A ``RecsightError``
becomes one line on stderr and exit code 2; any other exception is logged in full to
``recsight-error.log`` and reported as one line.

The long commands (``ingest``, ``ingest --append``, ``compact``, ``train``, ``evaluate``) pass a
:class:`progress.TerminalProgress` down to the library: phases, counts and time left on stderr,
as a bar on a terminal and as plain lines otherwise (``-v`` makes them lines too, beside the
log); ``-q`` turns them off. stdout keeps only the summary, as before.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from errors import RecsightError
from progress import SILENT, Progress, TerminalProgress
from settings import Settings, load_settings

log = logging.getLogger("recsight.cli")

FORMATS = ("generic", "online-retail", "rees46", "amazon-seq", "amazon-json", "taobao")
ERROR_LOG = Path("recsight-error.log")


# --------------------------------------------------------------------------- commands


@contextmanager
def _reporting(args: argparse.Namespace) -> Iterator[Progress]:
    """The progress reporter of a long command, finished before the command prints its summary
    (or its error): silent with ``--quiet``; plain lines with ``--verbose`` (the log's records
    would break a bar); else a bar on a terminal, plain lines elsewhere."""
    if args.quiet:
        yield SILENT
        return
    with TerminalProgress(args.command, sys.stderr, bar=False if args.verbose else None) as progress:
        yield progress


def cmd_synth(args: argparse.Namespace, settings: Settings) -> int:
    from analytics.synth import generate_shop

    summary = generate_shop(args.out, n_users=args.users, n_items=args.items, n_days=args.days, seed=args.seed)
    print(summary)
    return 0


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    if args.append:  # the live intake's writer: a segment beside the shop file, no copy of the store
        from workflows.intake import append_files

        secret = settings.require_secret()
        with _reporting(args) as progress:
            appended = append_files(args.db, args.paths, secret, fmt=args.format, progress=progress)
        print(appended.render())
        return 0
    from analytics.ingest import ingest_paths

    secret = settings.require_secret()
    with _reporting(args) as progress:
        summary = ingest_paths(args.db, args.format, args.paths, secret=secret, progress=progress)
    print(summary.render())  # the profiles were rebuilt inside the same transaction
    return 0


def cmd_compact(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.intake import compact

    with _reporting(args) as progress:
        result = compact(args.db, progress=progress)
    print(result.render(args.db))
    return 0


def cmd_batch(args: argparse.Namespace, settings: Settings) -> int:
    """``batch``: profiles, item stats and co-visitation on DuckDB or Spark; ``export-events``: the
    shop's events as a date-partitioned Parquet dataset (what ``batch --events`` and Spark read)."""
    if args.command == "export-events":
        from analytics.event_dataset import export_events

        print(export_events(args.db, args.out).render())
        return 0
    from workflows.batch_jobs import run_batch

    summary = run_batch(args.events or args.db, args.out, engine=args.engine, master=args.master,
                        as_of=args.as_of, items=args.items)
    print(summary.render())
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from models.config import QUICK
    from workflows.training import engine_distribution, train_shop

    distribution = engine_distribution(args.engine, args.scheduler, args.workers)  # one-line errors, before training
    with _reporting(args) as progress:
        result = train_shop(args.db, args.models, protocol=args.protocol, config=QUICK if args.quick else None,
                            progress=progress, serve=args.serve, distribution=distribution)
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.training import evaluate_shop, evaluation_text

    with _reporting(args) as progress:
        result = evaluate_shop(args.db, args.models, k=args.k, progress=progress)
    print(json.dumps(result, default=float) if args.json else evaluation_text(result))
    return 0


def cmd_recommend(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.explaining import format_recommendations, recommend

    result = recommend(args.db, args.models, args.user, k=args.k, explain=args.explain, secret=settings.secret)
    print(json.dumps(result, default=float) if args.json else format_recommendations(result))
    return 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.search import cli_search, format_search

    result = cli_search(args.db, args.models, args.q, args.user, k=args.k, explain=args.explain,
                        secret=settings.secret)
    print(json.dumps(result, default=float, ensure_ascii=False) if args.json else format_search(result))
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.reports import write_report

    written = write_report(args.db, args.models, args.user, fmt=args.format, out=args.out, secret=settings.secret,
                           currency=settings.currency)
    print(f"wrote {written}")
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from workflows.simulate import SimulationConfig, simulate

    lifts = {}
    for text in args.lift:
        name, _, value = text.partition("=")
        try:
            lifts[name.strip()] = float(value)
        except ValueError:
            raise RecsightError(f"--lift takes VARIANT=FRACTION such as B=0.05, not {text!r}") from None
    config = SimulationConfig(visits=args.visits, seed=args.seed, list_name=args.list, k=args.k,
                              span_hours=args.hours, click_lifts=lifts)
    settings = settings.with_overrides(db_path=args.db, models_dir=args.models)
    with _reporting(args) as progress:
        result = simulate(settings, args.truth, config, progress=progress)
    print(json.dumps(result.as_dict(), indent=2))
    return 0


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    from service.users import add_user, list_users

    if args.users_command == "add":
        user = add_user(settings.users_file, args.name, args.role, _read_password(args.name))
        print(f"added {user.name} ({user.role}) to {settings.users_file}")
        return 0
    users = list_users(settings.users_file)
    if not users:
        print(f"no users in {settings.users_file}")
    width = max((len(user.name) for user in users), default=0)
    for user in users:
        print(f"{user.name:<{width}}  {user.role:<8} {user.created}")
    return 0


def _read_password(name: str) -> str:
    """The new password: typed twice without echo at a terminal, else one line of standard input
    (``echo "$PASSWORD" | python cli.py users add ...``), so scripts never pass it as an argument."""
    if sys.stdin is not None and sys.stdin.isatty():
        import getpass

        password = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("Type it again: ") != password:
            raise RecsightError("the two passwords differ")
        return password
    line = sys.stdin.readline() if sys.stdin is not None else ""
    if not line:
        raise RecsightError("no password on standard input: type it at a terminal or pipe one line in")
    return line.rstrip("\r\n")


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from app import serve

    serve(settings.with_overrides(db_path=args.db, models_dir=args.models, host=args.host, port=args.port))
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cli.py", description="Recsight: explainable e-commerce recommendations")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    parser.add_argument("-q", "--quiet", action="store_true", help=_QUIET_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    _data_commands(sub)
    _model_commands(sub)
    _customer_commands(sub)
    _admin_commands(sub)
    return parser


_QUIET_HELP = "no progress on stderr (ingest, compact, train, evaluate); the summary is printed as always"


def _quiet_option(p: argparse.ArgumentParser) -> None:
    """``--quiet`` after the command name too (``cli.py train ... -q``); SUPPRESS keeps the
    main parser's value when it is not given here."""
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=_QUIET_HELP)


def _data_commands(sub: Any) -> None:
    """synth, ingest, compact, export-events, batch: the shop's data."""
    p = sub.add_parser("synth", help="generate the synthetic demo shop (Parquet)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--items", type=int, default=2000)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(handler=cmd_synth)

    p = sub.add_parser("ingest", help="validate and load behaviour files into the DuckDB store")
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("paths", type=Path, nargs="+")
    p.add_argument("--append", action="store_true",
                   help="append to the live segment (generic format, idempotent by event_id); no store rewrite")
    _quiet_option(p)
    p.set_defaults(handler=cmd_ingest)

    p = sub.add_parser("compact", help="fold the live segment into the shop file (safe to interrupt)")
    p.add_argument("--db", type=Path, required=True)
    _quiet_option(p)
    p.set_defaults(handler=cmd_compact)

    p = sub.add_parser("export-events", help="write the shop's events as Parquet partitioned by date (a data lake)")
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="folder of date=YYYY-MM-DD/part-N.parquet (and _items/)")
    p.set_defaults(handler=cmd_batch)

    p = sub.add_parser("batch", help="profiles, item stats and co-visitation as Parquet, on DuckDB or Spark")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--events", type=Path, help="an events dataset folder (export-events writes one)")
    source.add_argument("--db", type=Path, help="a shop file")
    p.add_argument("--out", type=Path, required=True, help="a folder per table goes here")
    p.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb")
    p.add_argument("--master", default=None, help="Spark master URL (default local[*])")
    p.add_argument("--as-of", default=None, help="ISO time; events before it count (default: all)")
    p.add_argument("--items", type=Path, default=None, help="the catalogue of --events (default: its _items/)")
    p.set_defaults(handler=cmd_batch)


def _model_commands(sub: Any) -> None:
    """train, evaluate: the models."""
    p = sub.add_parser("train", help="train candidates, attention model and ranker")
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--protocol", choices=("temporal", "leave-one-out"), default=None,
                   help="default: leave-one-out for order-only data, temporal otherwise")
    p.add_argument("--quick", action="store_true", help="smaller models, for the demo")
    p.add_argument("--serve", choices=("hybrid", "ranker"), default=None,
                   help="pin the ranker customers are served (default: the better one on the validation customers)")
    p.add_argument("--engine", choices=("local", "dask"), default="local",
                   help="local: this process; dask: rankers and precomputed lists on a Dask cluster, "
                        "the attention network on --workers processes")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="with --engine dask: a running Dask scheduler (tcp://host:8786); default: a local cluster")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="with --engine dask: local cluster workers and attention processes (default 2)")
    _quiet_option(p)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("evaluate", help="print the evaluation table of the trained models")
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--json", action="store_true")
    _quiet_option(p)
    p.set_defaults(handler=cmd_evaluate)


def _customer_commands(sub: Any) -> None:
    """recommend, search, report: what people ask of the models."""
    p = sub.add_parser("recommend", help="top-K items for one customer")
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--user", required=True, help="customer id as the shop knows it, or its pseudonym")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--explain", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_recommend)

    p = sub.add_parser("search", help="search the catalogue, as a customer or anonymously")
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--q", required=True, help="what to search for (any language)")
    p.add_argument("--user", default=None, help="search as this customer (shop id or pseudonym): personalised")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--explain", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_search)

    p = sub.add_parser("simulate", help="synthetic shoppers: shown lists, clicks and purchases through the intake")
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--truth", type=Path, required=True, help="the synthetic shop's truth/ folder (planted tastes)")
    p.add_argument("--visits", type=int, default=1000)
    p.add_argument("--hours", type=float, default=24.0, help="spread the visits over this many past hours")
    p.add_argument("--list", default="home", help="the list's name in the impressions")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--lift", action="append", default=[], metavar="VARIANT=FRACTION",
                   help="plant a relative click lift for a variant (e.g. B=0.05), to check an experiment finds it")
    _quiet_option(p)
    p.set_defaults(handler=cmd_simulate)

    p = sub.add_parser("report", help="export one customer's explanation report")
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--models", type=Path, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--format", required=True, choices=("html", "pdf", "csv"))
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(handler=cmd_report)


def _admin_commands(sub: Any) -> None:
    """users, serve: who may sign in, and the dashboard."""
    from service.users import ROLES

    p = sub.add_parser("users", help="manage who may sign in (the users file, RECSIGHT_USERS)")
    users = p.add_subparsers(dest="users_command", required=True)
    add = users.add_parser("add", help="add a user; the password is read from standard input")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    users.add_parser("list", help="list the users and their roles")
    p.set_defaults(handler=cmd_users)

    p = sub.add_parser("serve", help="serve the dashboard")
    p.add_argument("--db", type=Path, default=None)
    p.add_argument("--models", type=Path, default=None)
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(handler=cmd_serve)


def _positive(value: int | None, name: str) -> None:
    if value is not None and value <= 0:
        raise RecsightError(f"--{name} must be a positive number, got {value}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        for name in ("users", "items", "days", "k", "visits"):
            _positive(getattr(args, name, None), name)
        return handler(args, load_settings())
    except RecsightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback out of the user's face but on disk
        try:
            ERROR_LOG.write_text(traceback.format_exc())
            where = f"details in {ERROR_LOG}"
        except OSError:
            where = "run with -v for details"
        print(f"error: internal error ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); {where}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
