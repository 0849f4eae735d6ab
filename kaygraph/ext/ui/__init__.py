"""The KayGraph dashboard and HTTP API: runs, steps, state diffs, live events, schedules.

    from kaygraph.ext.ui import create_app

    app = create_app(store="sqlite:///.kaygraph/runs.db", graphs=["myapp.flows:graph"])
    # serve it: uvicorn.run(app, host="127.0.0.1", port=8080), or `kaygraph ui`

Built on FastAPI + uvicorn (``pip install 'kaygraph[ui]'``); the pages are plain HTML/CSS/JS
shipped in the package. Importing this package loads neither; ``create_app`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kaygraph.ext.base import PackageExtension, register_extension
from kaygraph.utils.imports import lazy_exports

if TYPE_CHECKING:
    from .abc import Page, RunSource
    from .app import create_app
    from .auth import AuthPolicy
    from .errors import ApiError, UIError
    from .live import LiveFeed
    from .source import PersistenceSource

__version__ = "1.0.0"

_EXPORTS = {
    "Page": "abc",
    "RunSource": "abc",
    "create_app": "app",
    "AuthPolicy": "auth",
    "ApiError": "errors",
    "UIError": "errors",
    "LiveFeed": "live",
    "PersistenceSource": "source",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


def _describe() -> dict[str, str]:
    """``kaygraph info``: how to serve the dashboard; nothing runs until ``create_app`` or ``kaygraph ui``."""
    from kaygraph.config import get_config

    config = get_config()
    auth = "token" if config.get("ui.token") else "loopback only, no token"
    return {"serve": f"kaygraph ui  (http://{config.get('ui.host')}:{config.get('ui.port')}, {auth})"}


register_extension(PackageExtension("ui", __version__, describe=_describe))

__all__ = [
    "ApiError",
    "AuthPolicy",
    "LiveFeed",
    "Page",
    "PersistenceSource",
    "RunSource",
    "UIError",
    "create_app",
]
