"""The ``kaygraph`` command (also ``python -m kaygraph``).

``kaygraph info`` shows what is installed and where the configuration came from; ``kaygraph
config`` shows every effective setting with its source.

Extensions add subcommands: if ``kaygraph/ext/<name>/cli.py`` exists and imports, its
``register(subparsers)`` is called with the ``argparse`` subparsers object. It adds its parsers and
sets ``func`` on each, a callable taking the parsed ``argparse.Namespace`` and returning an exit
code (or None for 0)::

    def register(subparsers):
        runs = subparsers.add_parser("runs", help="list and resume durable runs")
        runs.set_defaults(func=lambda args: print("..."))
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from kaygraph.config import Config


def fail(message: str, status: int = 1) -> int:
    """Print ``kaygraph: error: MESSAGE`` to stderr and return ``status``, for ``return fail(...)``.

    The one form every command's errors take, the extensions' included, so a script or a reader
    finds them the same way.
    """
    print(f"kaygraph: error: {message}", file=sys.stderr)
    return status


def _config_origin(config: Config) -> list[str]:
    import os

    if config.file is not None:
        lines = [f"Config: file {config.file}"]
    elif config.searched:
        lines = [f"Config: defaults (no file found; looked for {', '.join(config.searched)})"]
    else:
        lines = ["Config: defaults"]
    overridden = sorted({source[4:] for _, _, source in config.items() if source.startswith("env ")})
    if overridden:
        lines.append(f"  overridden by environment: {', '.join(overridden)}")
    if os.environ.get("KAYGRAPH_CONFIG"):
        lines.append(f"  KAYGRAPH_CONFIG={os.environ['KAYGRAPH_CONFIG']}")
    return lines


def _cmd_info(args: argparse.Namespace) -> int:
    from kaygraph.config import get_config
    from kaygraph.core.exceptions import ConfigurationError
    from kaygraph.info import info_lines

    lines = info_lines()
    status = 0
    try:
        lines += ["", *_config_origin(get_config())]
    except ConfigurationError as exc:
        lines += ["", f"Config: ERROR {exc}"]
        status = 1
    print("\n".join(lines))
    return status


#: Key names whose values are secrets, wherever they appear (``myplugin.api_key``, nested objects).
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[_-]?key|credential|private[_-]?key|auth", re.IGNORECASE
)
_HIDDEN = "***"


def _is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key.rpartition(".")[2]))


def _redact(value: Any, key: str = "") -> Any:
    """``value`` with its secrets hidden, recursively through objects and lists.

    A value under a key named like a secret (``token``, ``password``, ``api_key``...) becomes
    ``"***"``; a URL's password becomes ``***`` (``redis://:secret@host`` -> ``redis://:***@host``).
    """
    if key and value is not None and _is_secret_key(key):
        return _HIDDEN
    if isinstance(value, Mapping):
        return {name: _redact(item, str(name)) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(item) for item in value]
    if not isinstance(value, str) or "@" not in value or "://" not in value:
        return value
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:  # not a URL after all (e.g. a bad port): hide what may be a password
        return _HIDDEN
    if not password:
        return value
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}:{_HIDDEN}@{host}").geturl()


def _format_value(value: Any, key: str) -> str:
    import json

    return json.dumps(_redact(value, key), default=str)


def _select(config: Config, key: str) -> list[tuple[str, Any, str]]:
    """The rows ``kaygraph config KEY`` shows: the key itself, every key of a section
    (``ui``), or a value inside an object-valued key (``myplugin.options.level``), as
    :meth:`Config.get` reads them."""
    rows = config.items()
    selected = [row for row in rows if row[0] == key or row[0].startswith(key + ".")]
    if selected:
        return selected
    top = key.partition(".")[0]
    missing = object()
    value = config.get(key, missing)
    source = next((row[2] for row in rows if row[0] == top), None)
    if source is not None and value is not missing:
        return [(key, value, source)]
    config.source_of(key)  # unknown: ConfigurationError with a suggestion
    return []  # pragma: no cover - source_of raised


def _planned_sections() -> list[str]:
    """Config sections of extensions this KayGraph does not ship yet (found, not hard-coded)."""
    from kaygraph import ext

    return [name for name in ext.EXTENSIONS if ext.package_directory(name) is None]


def _cmd_config(args: argparse.Namespace) -> int:
    from kaygraph import __version__
    from kaygraph.config import get_config

    config = get_config()
    planned = _planned_sections()
    rows = _select(config, args.key) if args.key else config.items()
    if args.json:
        import json

        payload = {
            key: {
                "value": _redact(value, key),
                "source": source,
                **({"planned": True} if key.partition(".")[0] in planned else {}),
            }
            for key, value, source in rows
        }
        print(json.dumps(payload, indent=2, default=str))
        return 0
    hidden = sorted({key.partition(".")[0] for key, _, _ in rows} & set(planned), key=planned.index)
    if args.key:
        for section in hidden:  # asked for by name: shown, but not as if they did something
            print(
                f"kaygraph: note: the {section} extension is planned, not shipped in KayGraph "
                f"{__version__}: its settings do nothing yet",
                file=sys.stderr,
            )
    else:  # the full table lists live settings only
        rows = [row for row in rows if row[0].partition(".")[0] not in planned]
    width = max(len(key) for key, _, _ in rows)
    value_width = max(len(_format_value(value, key)) for key, value, _ in rows)
    for key, value, source in rows:
        print(f"{key:<{width}}  {_format_value(value, key):<{value_width}}  ({source})")
    if hidden and not args.key:
        sections = ", ".join(f"{name}.*" for name in hidden)
        print(
            f"\n{sections}: settings of planned extensions (not shipped in KayGraph {__version__}), "
            f"not shown; `kaygraph config {hidden[0]}` shows them"
        )
    return 0


def _register_extension_commands(subparsers: Any) -> None:
    """Let each installed extension that ships ``cli.py`` add its subcommands."""
    import importlib
    import os

    from kaygraph import ext

    for name in ext.EXTENSIONS:
        directory = ext.package_directory(name)
        if directory is None or not os.path.isfile(os.path.join(directory, "cli.py")):
            continue
        try:
            module = importlib.import_module(f"kaygraph.ext.{name}.cli")
            module.register(subparsers)
        except ImportError:
            continue  # its extra is not installed: the extension is absent, so are its commands
        except Exception as exc:  # one broken extension must not take `kaygraph info` down with it
            print(
                f"kaygraph: warning: the {name} extension's commands are unavailable "
                f"({type(exc).__name__}: {exc})",
                file=sys.stderr,
            )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with the extensions' subcommands registered."""
    import argparse

    from kaygraph import __version__

    parser = argparse.ArgumentParser(
        prog="kaygraph", description="KayGraph: AI applications as graphs of nodes."
    )
    parser.add_argument("--version", action="version", version=f"kaygraph {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = subparsers.add_parser("info", help="show the version, extensions, plugins and config origin")
    info.set_defaults(func=_cmd_info)

    config = subparsers.add_parser("config", help="show the effective configuration and each value's source")
    config.add_argument(
        "key", nargs="?", help="show only this key, section or nested key (e.g. persistence.backend, ui)"
    )
    config.add_argument("--json", action="store_true", help="print JSON instead of a table")
    config.set_defaults(func=_cmd_config)

    _register_extension_commands(subparsers)
    return parser


#: Exit status when stdout was closed early (``kaygraph config | head -1``): 128 + SIGPIPE, as
#: the shell reports for any program a closed pipe stops.
EXIT_PIPE_CLOSED = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    A reader that stops early (``| head``) ends the command quietly instead of with a
    ``BrokenPipeError`` traceback: for every subcommand, extensions' included, since all of their
    output goes through here.
    """
    import os

    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # inside the try: the closed pipe shows here, not at exit
    except BrokenPipeError:
        # Python flushes stdout again at exit; point it at /dev/null so that flush is silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_PIPE_CLOSED


def _main(argv: Sequence[str] | None) -> int:
    from kaygraph.core.exceptions import ConfigurationError, KayGraphError

    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        result = func(args)
    except ConfigurationError as exc:
        return fail(str(exc), 2)
    except KayGraphError as exc:
        return fail(str(exc))
    return int(result or 0)


__all__ = ["build_parser", "fail", "main"]
