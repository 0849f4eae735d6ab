"""The Dashboard: everything one dashboard app serves from, shared by the app and its routes.

Its own module, so the API routes can name it without importing the app that mounts them.
"""

from __future__ import annotations

import dataclasses

from .auth import AuthPolicy
from .base import Redactor
from .graphs import GraphCatalog
from .launcher import Launcher
from .live import LiveFeed
from .source import CountingSource


@dataclasses.dataclass
class Dashboard:
    """Everything one app serves from: the run source, live feed, graphs, launcher and rules."""

    source: CountingSource
    feed: LiveFeed
    catalog: GraphCatalog
    launcher: Launcher
    auth: AuthPolicy
    redact: Redactor
    max_value_chars: int
    title: str
    #: URL of the scheduler's store (None: the ``scheduler.*`` configuration).
    schedule_store: str | None = None
