"""``kaygraph runs list|show|delete``: the durable runs of a store, from the command line."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``runs`` command and its subcommands to the ``kaygraph`` parser."""
    runs = subparsers.add_parser("runs", help="list, show and delete durable runs")
    runs.add_argument("--store", help="store URL (default: the configured persistence store)")
    commands = runs.add_subparsers(dest="runs_command", metavar="SUBCOMMAND")

    listing = commands.add_parser("list", help="runs, newest first")
    listing.add_argument("--graph", help="only runs of this graph name")
    listing.add_argument("--status", choices=("running", "succeeded", "failed"))
    listing.add_argument("--since", help="created at or after (ISO date/time)")
    listing.add_argument("--until", help="created before (ISO date/time)")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.set_defaults(func=_list)

    show = commands.add_parser("show", help="a run's metadata and its steps")
    show.add_argument("run_id")
    show.add_argument("--state", action="store_true", help="print the shared state after each step")
    show.add_argument(
        "--serializer",
        choices=("json", "pickle"),
        default="json",
        help="decode checkpoints with this serializer (default: json). Runs recorded with pickle are "
        "shown only with --serializer pickle: loading a pickle runs code, so use it only for a store "
        "you trust",
    )
    show.set_defaults(func=_show)

    delete = commands.add_parser("delete", help="erase every trace of a run")
    delete.add_argument("run_id")
    delete.add_argument("--force", action="store_true", help="even while a live process writes it")
    delete.set_defaults(func=_delete)
    runs.set_defaults(func=lambda args: runs.print_help())


def _time(value: float | None) -> str:
    return "-" if value is None else _dt.datetime.fromtimestamp(value).isoformat(sep=" ", timespec="seconds")


def _list(args: Any) -> int:
    from .durable import list_runs

    since = _dt.datetime.fromisoformat(args.since) if args.since else None
    until = _dt.datetime.fromisoformat(args.until) if args.until else None
    runs = list_runs(
        args.store, graph_name=args.graph, status=args.status, since=since, until=until, limit=args.limit
    )
    for info in runs:
        if args.json:
            print(json.dumps(info.__dict__))
        else:
            print(
                f"{info.run_id:<32} {info.graph_name:<20} {info.status:<10} "
                f"steps={info.steps:<6} created={_time(info.created_at)}"
            )
    if not runs and not args.json:
        print("no runs")
    return 0


def _show(args: Any) -> int:
    from .durable import get_run, steps

    info = get_run(args.store, args.run_id)
    for name, value in info.__dict__.items():
        print(f"{name:<17} {_time(value) if name.endswith('_at') else value}")
    print()
    # States are decoded only when shown: listing steps needs no user classes nor serializer.
    for entry in steps(args.store, args.run_id, serializer=args.serializer, decode=args.state):
        where = " > ".join(map(str, entry.path)) or "-"
        print(
            f"#{entry.seq:<5} {entry.kind:<7} {where:<30} action={entry.action!r} at {_time(entry.timestamp)}"
        )
        if args.state:
            print(f"        state: {entry.state!r}")
    return 0


def _delete(args: Any) -> int:
    from .durable import delete_run

    if delete_run(args.store, args.run_id, force=args.force):
        print(f"deleted run {args.run_id!r}")
        return 0
    print(f"no run {args.run_id!r}")
    return 1


__all__ = ["register"]
