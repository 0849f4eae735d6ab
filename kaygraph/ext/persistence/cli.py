"""``kaygraph runs list|show|resume|delete``: the durable runs of a store, from the command line.

``--store URL`` is accepted before or after the subcommand. Read-only commands never create a
store (``runs list`` in a fresh directory says "no runs"). ``runs show`` hides secrets (values
under keys named like ``password``/``token``/``api_key``, bearer tokens and ``sk-...`` keys in
text, URL passwords) unless ``--show-secrets`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import re
from typing import Any

from .abc import RUN_STATUSES

#: Text that looks like a credential wherever it appears (error messages, state strings).
_SECRET_TEXT = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"
    r"|\b(sk|pk|rk|ghp|gho|xox[abprs])[-_][A-Za-z0-9_-]{8,}"
    r"|((?:api[_-]?key|token|secret|password|passwd|pwd|auth)\s*[=:]\s*)[^\s,;'\"&]+"
)


def redact_text(text: str) -> str:
    """``text`` with credentials replaced by ``***`` (see the module docstring)."""

    def hide(match: re.Match[str]) -> str:
        prefix = match.group(1) or match.group(3)
        return f"{prefix}***" if prefix else "***"

    return _SECRET_TEXT.sub(hide, text)


def redact(value: Any) -> Any:
    """``value`` with secrets hidden: by key name (as ``kaygraph config`` does) and by look."""
    from kaygraph.cli import _redact

    def strings(item: Any) -> Any:
        if isinstance(item, str):
            return redact_text(item)
        if isinstance(item, dict):
            return {key: strings(inner) for key, inner in item.items()}
        if isinstance(item, (list, tuple)):
            return [strings(inner) for inner in item]
        return item

    return strings(_redact(value))


def register(subparsers: Any) -> None:
    """Add the ``runs`` command and its subcommands to the ``kaygraph`` parser."""
    runs = subparsers.add_parser("runs", help="list, show, resume and delete durable runs")
    runs.add_argument("--store", help="store URL (default: the configured persistence store)")
    commands = runs.add_subparsers(dest="runs_command", metavar="SUBCOMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        # Also after the subcommand (`kaygraph runs list --store URL`); SUPPRESS keeps the value
        # given before it when this one is absent.
        parser.add_argument("--store", default=argparse.SUPPRESS, help="store URL")
        return parser

    listing = command("list", "runs, newest first")
    listing.add_argument("--graph", help="only runs of this graph name")
    listing.add_argument("--status", choices=RUN_STATUSES)
    listing.add_argument("--since", help="created at or after (ISO date/time)")
    listing.add_argument("--until", help="created before (ISO date/time)")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="print JSON lines")
    listing.set_defaults(func=_list)

    show = command("show", "a run's metadata and its steps")
    show.add_argument("run_id")
    show.add_argument(
        "--state",
        action="store_true",
        help="print what each step changed in the shared state (keys set, items appended, keys deleted)",
    )
    show.add_argument("--full", action="store_true", help="with --state: print values whole, not shortened")
    show.add_argument("--show-secrets", action="store_true", help="do not hide secrets in errors and state")
    show.add_argument(
        "--serializer",
        choices=("json", "pickle"),
        default="json",
        help="decode checkpoints with this serializer (default: json). Runs recorded with pickle are "
        "shown only with --serializer pickle: loading a pickle runs code, so use it only for a store "
        "you trust",
    )
    show.set_defaults(func=_show)

    resume = command("resume", "continue a run (crashed, failed, cancelled or forked)")
    resume.add_argument("run_id")
    resume.add_argument(
        "--graph", metavar="REF", help="package.module:attr of the graph (default: the one the run recorded)"
    )
    resume.set_defaults(func=_resume)

    delete = command("delete", "erase every trace of a run")
    delete.add_argument("run_id")
    delete.add_argument("--force", action="store_true", help="even while a live process writes it")
    delete.set_defaults(func=_delete)
    runs.set_defaults(func=lambda args: runs.print_help())


def _time(value: float | None) -> str:
    return "-" if value is None else _dt.datetime.fromtimestamp(value).isoformat(sep=" ", timespec="seconds")


def _list(args: Any) -> int:
    from .history import list_runs

    since = _dt.datetime.fromisoformat(args.since) if args.since else None
    until = _dt.datetime.fromisoformat(args.until) if args.until else None
    runs = list_runs(
        args.store, graph_name=args.graph, status=args.status, since=since, until=until, limit=args.limit
    )
    for info in runs:
        if args.json:
            print(json.dumps(redact({**info.__dict__, "traceback": None})))
        else:
            print(
                f"{info.run_id:<32} {info.graph_name:<20} {info.status:<10} "
                f"steps={info.steps:<6} created={_time(info.created_at)}"
            )
    if not runs and not args.json:
        print(f"no runs in {_store_name(args.store)} (pass --store URL to read another store)")
    return 0


def _store_name(store: str | None) -> str:
    """The store a command reads, as a URL to paste into ``--store`` (password hidden)."""
    from pathlib import Path

    from .base import redact_url
    from .stores import SQLITE_FILE, setting

    url = store or setting("url")
    if url:
        return redact_url(url)
    if setting("backend") == "sqlite":
        return f"sqlite:///{Path(setting('directory')) / SQLITE_FILE}"
    return f"{setting('backend')}://"


def _show(args: Any) -> int:
    from .history import get_run, iter_steps

    info = get_run(args.store, args.run_id)

    def hide(value: Any) -> Any:
        return value if args.show_secrets else redact(value)

    for name, value in info.__dict__.items():
        if name == "traceback" and value:
            continue
        print(f"{name:<17} {_time(value) if name.endswith('_at') else hide(value)}")
    if info.traceback:
        print("traceback:")
        print("  " + hide(info.traceback).rstrip().replace("\n", "\n  "))
    print()
    # States are decoded only when shown: listing steps needs no user classes nor serializer.
    before: dict[str, Any] | None = None
    shortened = False
    for entry in iter_steps(args.store, args.run_id, serializer=args.serializer, decode=args.state):
        where = " > ".join(map(str, entry.path)) or "-"
        action = "" if entry.action is None else f" action={entry.action!r}"
        print(f"#{entry.seq:<5} {entry.kind:<7} {where:<30} at {_time(entry.timestamp)}{action}")
        if args.state and entry.state is not None:
            state = hide(entry.state)
            for line in state_changes(before, state, limit=None if args.full else SHOWN_CHARS):
                shortened = shortened or line.endswith(_CUT)
                print(f"        {line}")
            before = state
    if shortened:
        print(f"\n(values longer than {SHOWN_CHARS} characters are shortened: --full prints them whole)")
    return 0


#: ``runs show --state`` shortens each value to this many characters (``--full``: whole).
SHOWN_CHARS = 100


_CUT = "..."


def _shown(value: Any, limit: int | None) -> str:
    text = repr(value)
    if limit is not None and len(text) > limit:
        text = text[: limit - len(_CUT)] + _CUT
    return text


def state_changes(before: dict[str, Any] | None, after: dict[str, Any], *, limit: int | None) -> list[str]:
    """Lines saying what changed from state ``before`` (None: nothing yet) to ``after``: a key set
    (``key = value``), items appended to a list (``key += [...]``), a key deleted; values
    shortened to ``limit`` characters."""
    lines = []
    for key, value in after.items():
        if before is not None and key in before:
            old = before[key]
            if type(old) is type(value) and old == value:
                continue
            grew = type(value) is list and type(old) is list and len(value) > len(old)
            if grew and value[: len(old)] == old:
                added = value[len(old) :]
                lines.append(f"{key} += {_shown(added, limit)}")
                continue
        lines.append(f"{key} = {_shown(value, limit)}")
    lines += [f"{key} deleted" for key in before or () if key not in after]
    return lines or ["(no change)"]


def _resume(args: Any) -> int:
    from kaygraph.core.async_node import AsyncGraph

    from .durable import durable
    from .history import get_run

    info = get_run(args.store, args.run_id)
    reference = args.graph or info.graph_ref
    if not reference:
        from kaygraph.core.exceptions import ResumeError

        raise ResumeError(
            f"run {args.run_id!r} did not record a graph reference (its graph was not made by "
            "kaygraph.load_graph): pass --graph package.module:attr",
            run_id=args.run_id,
        )
    import kaygraph
    from kaygraph.utils.observe import observe_from_config

    graph = kaygraph.load_graph(reference)
    observing = observe_from_config()
    if observing:
        print(observing, flush=True)
    with durable(graph, args.store) as runner:
        if isinstance(runner.graph, AsyncGraph):
            result = asyncio.run(runner.resume_async(args.run_id))
        else:
            result = runner.resume(args.run_id)
    done = " (it had already finished)" if result.already_finished else ""
    action = "" if result.action is None else f", last action {result.action!r}"
    print(f"run {result.run_id!r} {result.status}{done}: {result.steps} steps{action}")
    return 0


def _delete(args: Any) -> int:
    from .history import delete_run

    if delete_run(args.store, args.run_id, force=args.force):
        print(f"deleted run {args.run_id!r}")
        return 0
    from kaygraph.cli import fail

    return fail(f"no run {args.run_id!r} in {_store_name(args.store)}")


__all__ = ["redact", "redact_text", "register", "state_changes"]
