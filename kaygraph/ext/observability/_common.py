"""Small helpers shared by the tracing, metrics and log listeners."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kaygraph.core.events import Path

#: The pip extra (``kaygraph[observability]``) and configuration section of this extension.
EXTRA = "observability"


def path_text(path: Path) -> str:
    """A node's position as text, batch indices included: ``"ingest/3/embed"``.

    Used on spans and log lines, where one value per item is wanted.
    """
    if len(path) == 1:
        return str(path[0])
    return "/".join(map(str, path))


def node_label(path: Path) -> str:
    """A node's position without batch indices: ``"ingest/embed"``.

    Used as a metric label, whose values must stay bounded: a graph has finitely many nodes, but
    a batch may have any number of items.
    """
    if len(path) == 1:
        return str(path[0])
    return "/".join(part for part in path if isinstance(part, str))
