"""What is installed: the extensions that really work here, their status lines, and the plugins.

Used by :func:`kaygraph.list_extensions`, :func:`kaygraph.show_info` and ``kaygraph info``. Both
import the extensions they check (an extension counts only when it imports), so call them from
tools and scripts, not on a hot path.
"""

from __future__ import annotations

import sys
from typing import TextIO


def list_extensions() -> list[tuple[str, str]]:
    """``(name, description)`` of every installed extension: its package imports and every
    distribution of its extra is installed. Extensions still to come are never listed."""
    from kaygraph import ext

    return [(status.name, status.description) for status in ext.statuses() if status.installed]


def _describe(name: str, config_error: Exception | None) -> dict[str, str]:
    """The registered extension's own status lines, without initializing it.

    When the configuration has an error (reported once, at the end of ``kaygraph info``), an
    extension's lines would only repeat it: the extension whose key is at fault gets one line
    naming the key, the others none.
    """
    from kaygraph.ext.base import registry

    extension = registry.peek(name)
    if extension is None:
        return {}
    if config_error is not None:
        key = str(getattr(config_error, "key", None) or "")
        if key == name or key.startswith(name + "."):
            return {"config": f"invalid {key} (see Config below)"}
        return {}
    try:
        lines = extension.describe()
        return {str(key): str(value) for key, value in lines.items()}
    except Exception as exc:  # a broken describe() must not hide the rest of the report
        return {"status": f"describe() failed: {type(exc).__name__}: {exc}"}


def _config_error() -> Exception | None:
    from kaygraph.config import get_config
    from kaygraph.core.exceptions import ConfigurationError

    try:
        get_config()
    except ConfigurationError as exc:
        return exc
    return None


def info_lines() -> list[str]:
    """The report :func:`show_info` prints, as lines."""
    import os

    from kaygraph import ext
    from kaygraph.core import __version__
    from kaygraph.plugins import registry as plugins

    lines = [
        f"KayGraph {__version__} (Python {sys.version.split()[0]}, {os.path.dirname(__file__)})",
        "",
        "Core (standard library only): nodes with retries and fallbacks, graphs that nest, batch,",
        "  parallel and async nodes, lifecycle listeners, Mermaid export",
        "",
        "Extensions:",
    ]
    width = max(map(len, ext.EXTENSIONS))
    state_width = max(map(len, ext.STATES))
    indent = " " * (width + 4)
    config_error = _config_error()
    for status in ext.statuses():
        head = f"  {status.name:<{width}}  {status.state:<{state_width}}  {status.description}"
        if status.state == "installed":
            lines.append(head)
        elif status.state == "partial":
            lines.append(head)
            lines.append(f"  {indent}needs: {status.detail[len('needs '):]}")
        else:
            lines.append(f"{head}: {status.detail}")
        if status.usable:
            described = _describe(status.name, config_error)
            lines.extend(f"  {indent}{key}: {value}" for key, value in described.items())

    lines += ["", "Plugins:"]
    found = plugins.list_plugins()
    for info in found:
        key = next(name for name, value in plugins.plugins.items() if value is info)
        summary = f" - {info.description}" if info.description else ""
        lines.append(f"  {key} {info.version}{summary} [{plugins.origin(key)}]")
    for name, error in plugins.failed.items():
        lines.append(f"  {name}: failed to load, skipped ({error})")
    if not plugins.autoload:
        lines.append("  discovery is off (KAYGRAPH_DISABLE_PLUGIN_AUTOLOAD is set)")
    elif not found and not plugins.failed:
        lines.append("  none found")
    if plugins.allow_list is not None:
        lines.append(f"  limited to KAYGRAPH_PLUGINS={','.join(sorted(plugins.allow_list))}")
    return lines


def show_info(file: TextIO | None = None) -> None:
    """Print the KayGraph version, the installed extensions with their status, and the plugins."""
    print("\n".join(info_lines()), file=file or sys.stdout)


__all__ = ["info_lines", "list_extensions", "show_info"]
