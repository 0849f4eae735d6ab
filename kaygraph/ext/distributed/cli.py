"""``kaygraph distributed check [URL]``: connect to a cluster and show what KayGraph would use.

Checks the address answers within the timeout, runs one task on it, and prints the executor's
settings and worker slots, so pointing a graph at a real cluster starts with a clear yes or no.
"""

from __future__ import annotations

import time
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``distributed`` command to the ``kaygraph`` parser."""
    command = subparsers.add_parser("distributed", help="check the executor a graph would run on")
    commands = command.add_subparsers(dest="distributed_command", metavar="SUBCOMMAND")
    check = commands.add_parser("check", help="connect, run one task, show workers and settings")
    check.add_argument(
        "url",
        nargs="?",
        help="process[://N], dask, tcp://host:8786, ray, ray://host:10001 (default: the configuration)",
    )
    check.add_argument("--timeout", type=float, default=None, help="seconds to reach the cluster")
    check.set_defaults(func=_check)
    command.set_defaults(func=lambda args: command.print_help())


def _echo(value: int) -> int:
    return value


def _check(args: Any) -> int:
    from kaygraph.cli import fail

    from .errors import DistributedError
    from .factory import open_executor

    options = {} if args.timeout is None else {"connect_timeout": args.timeout}
    try:
        executor = open_executor(args.url, **options)
    except DistributedError as exc:
        return fail(str(exc), 2)
    if executor is None:
        print("executor: local (graphs run in this process; nothing to check)")
        return 0
    started = time.perf_counter()
    try:
        with executor:
            assert executor.submit(_echo, 42).result(timeout=60) == 42
            elapsed = time.perf_counter() - started
            for key, value in executor.describe().items():
                print(f"{key}: {value}")
            print(f"ok: connected and ran a task in {elapsed:.2f} s")
    except DistributedError as exc:
        return fail(str(exc))
    return 0


__all__ = ["register"]
