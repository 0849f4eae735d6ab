"""Observability for KayGraph's own long-running commands, switched on by configuration alone.

``kaygraph scheduler run``, ``kaygraph ui`` and ``kaygraph runs resume`` have no start-up code of
the user's in which to call :func:`kaygraph.ext.observability.instrument`, so for them the
``observability.*`` settings (file, ``KAYGRAPH_OBSERVABILITY_*``) are enough. Nothing is imported
from the observability extension unless a setting asks for it.
"""

from __future__ import annotations

_SWITCHES = ("tracing_enabled", "metrics_enabled", "json_logs")


def observe_from_config() -> str | None:
    """Start what ``observability.*`` enables; returns a line saying what is on, or None if off.

    A missing extra raises its install hint (the user asked for observability, so silence would
    hide the problem).
    """
    from kaygraph.config import get_config

    config = get_config()
    if not any(config.get(f"observability.{name}") for name in _SWITCHES):
        return None
    from kaygraph.ext.observability import instrument

    lines = instrument().describe()
    return "observability: " + ", ".join(f"{name} {value}" for name, value in lines.items() if value != "off")
