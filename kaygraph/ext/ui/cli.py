"""``kaygraph ui``: serve the dashboard with uvicorn."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add ``kaygraph ui`` to the ``kaygraph`` command."""
    parser = subparsers.add_parser(
        "ui",
        help="serve the web dashboard and HTTP API for durable runs",
        description=(
            "Serve the KayGraph dashboard. Binds 127.0.0.1 by default; any other address needs a "
            "token (ui.token / KAYGRAPH_UI_TOKEN) unless --insecure-no-auth."
        ),
    )
    parser.add_argument("--store", help="persistence store URL (default: ui.store, else persistence.*)")
    parser.add_argument(
        "--graphs",
        nargs="+",
        default=[],
        metavar="MODULE:ATTR",
        help="graphs to show and start (package.module:attr; a Graph or a factory returning one)",
    )
    parser.add_argument("--host", default=None, help="bind address (default: ui.host, 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=None, help="port (default: ui.port, 8080; 0 picks a free one)"
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve a non-loopback address without a token (only on a network you trust)",
    )
    parser.add_argument("--schedule-store", default=None, help="scheduler store URL (default: scheduler.*)")
    parser.set_defaults(func=_cmd_ui)


def _cmd_ui(args: argparse.Namespace) -> int:
    from kaygraph.cli import fail
    from kaygraph.config import get_config

    from .base import is_loopback

    config = get_config()
    host = args.host or config.get("ui.host")
    port = config.get("ui.port") if args.port is None else args.port
    if not 0 <= port <= 65535:
        return fail(f"--port {port} is not a port (0-65535)", 2)
    token = config.get("ui.token")
    if not is_loopback(host) and not token and not config.get("ui.read_token") and not args.insecure_no_auth:
        return fail(
            f"refusing to serve {host} without a token: anyone who can reach it could "
            "start and cancel runs. Set KAYGRAPH_UI_TOKEN (or ui.token in the config file), or pass "
            "--insecure-no-auth on a network you trust.",
            2,
        )
    import os

    from .app import create_app

    if os.getcwd() not in sys.path:  # --graphs myapp.flows:graph finds the project's modules, as uvicorn does
        sys.path.insert(0, os.getcwd())

    try:
        app = create_app(
            args.store,
            graphs=args.graphs,
            insecure_no_auth=args.insecure_no_auth,
            **({"schedule_store": args.schedule_store} if args.schedule_store else {}),
        )
    except ImportError as exc:
        return fail(str(exc), 2)
    import socket

    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without it
    # every response waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        return fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", 2)
    port = sock.getsockname()[1]  # the real one when --port 0 picked a free port
    shown = f"[{host}]" if ":" in host else host
    store = app.state.kaygraph.source.describe()
    print(f"KayGraph dashboard: http://{shown}:{port}/  (store: {store}; Ctrl-C stops it)", flush=True)
    from kaygraph.utils.observe import observe_from_config

    observing = observe_from_config()
    if observing:
        print(observing, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
    server.run(sockets=[sock])
    return 0


__all__ = ["register"]
