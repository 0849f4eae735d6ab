"""``create_app``: the dashboard and its HTTP API as one ASGI application (FastAPI).

Mount it in your own service (``main_app.mount("/kaygraph", create_app(store=...))``) or serve it
with ``kaygraph ui``. Everything it needs is in the package: no CDN, no Node.js.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

from kaygraph.utils.imports import require_package

require_package("fastapi", "ui", "The KayGraph dashboard")
require_package("uvicorn", "ui", "The KayGraph dashboard")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import FileResponse, JSONResponse  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402
from starlette.staticfiles import StaticFiles  # noqa: E402

from kaygraph.core.exceptions import (  # noqa: E402
    CheckpointCorruptError,
    KayGraphError,
    PersistenceError,
    RunLockedError,
    RunNotFoundError,
    SerializationError,
)

from .auth import AuthPolicy  # noqa: E402
from .base import DEFAULT_MAX_VALUE_CHARS, DEFAULT_SECRET_PATTERN, Redactor  # noqa: E402
from .dashboard import Dashboard  # noqa: E402
from .errors import ApiError  # noqa: E402
from .graphs import GraphCatalog  # noqa: E402
from .launcher import Launcher  # noqa: E402
from .live import LiveFeed  # noqa: E402
from .source import CountingSource, PersistenceSource  # noqa: E402

FRONTEND = Path(__file__).parent / "frontend"
_UNSET: Any = object()


def _setting(name: str, default: Any) -> Any:
    try:
        from kaygraph.config import get_config

        return get_config().get(f"ui.{name}", default)
    except (ImportError, KeyError, KayGraphError):
        return default


def create_app(
    store: Any = None,
    *,
    graphs: Iterable[Any] | Mapping[str, Any] = (),
    token: str | None = _UNSET,
    read_token: str | None = _UNSET,
    insecure_no_auth: bool = False,
    allowed_origins: Iterable[str] = _UNSET,
    redact: bool | str = _UNSET,
    poll_interval: float = _UNSET,
    max_value_chars: int = _UNSET,
    serializer: Any = None,
    schedule_store: str | None = _UNSET,
    title: str = "KayGraph",
) -> FastAPI:
    """The dashboard as an ASGI app.

    ``store``: a persistence store or URL (None: ``ui.store``, else the ``persistence.*`` config).
    ``graphs``: Graphs (or ``package.module:attr`` references) that can be shown and started.
    ``token`` / ``read_token`` (default ``ui.token`` / ``ui.read_token``): without them only
    loopback clients are served, unless ``insecure_no_auth``. ``redact``: hide values under
    secret-looking keys (True, False, or a regular expression of key names).
    """
    if store is None:
        store = _setting("store", None)
    source = PersistenceSource(store, serializer=serializer)
    counting = CountingSource(source)
    if redact is _UNSET:
        redact = _setting("redact", True)
    pattern = DEFAULT_SECRET_PATTERN if redact is True else (redact or None)
    catalog = GraphCatalog()
    if isinstance(graphs, Mapping):
        for name, graph in graphs.items():
            catalog.add(graph, name=name)
    else:
        for graph in graphs:
            catalog.add(graph)
    auth = AuthPolicy(
        token=_setting("token", None) if token is _UNSET else token,
        read_token=_setting("read_token", None) if read_token is _UNSET else read_token,
        insecure_no_auth=insecure_no_auth,
        allowed_origins=tuple(
            _origins(_setting("allowed_origins", None)) if allowed_origins is _UNSET else allowed_origins
        ),
    )
    dashboard = Dashboard(
        source=counting,
        feed=LiveFeed(
            counting,
            interval=_setting("poll_interval_ms", 100) / 1000 if poll_interval is _UNSET else poll_interval,
        ),
        catalog=catalog,
        launcher=Launcher(source.store, catalog, serializer=serializer),
        auth=auth,
        redact=Redactor(pattern),
        max_value_chars=(
            _setting("max_value_chars", DEFAULT_MAX_VALUE_CHARS)
            if max_value_chars is _UNSET
            else max_value_chars
        ),
        title=title,
        schedule_store=_setting("schedule_store", None) if schedule_store is _UNSET else schedule_store,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await dashboard.feed.stop()
        source.close()

    app = FastAPI(
        title=f"{title} dashboard API",
        version=_version(),
        description="Runs, steps, state, live events and schedules of KayGraph durable runs.",
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.kaygraph = dashboard
    _install_error_handlers(app)

    from .api import events, runs, schedules, session
    from .api import graphs as graph_routes

    for module in (session, runs, events, graph_routes, schedules):
        app.include_router(module.router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": _version()}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(FRONTEND / "index.html", headers=_PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=FRONTEND), name="static")
    return app


#: The page runs only its own script and style: injected markup could not load or run anything.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _origins(text: str | None) -> list[str]:
    return [origin.strip().rstrip("/") for origin in (text or "").split(",") if origin.strip()]


def _version() -> str:
    from kaygraph import __version__

    return __version__


def _error(status: int, message: str, culprit: str | None = None, code: str | None = None) -> JSONResponse:
    error = ApiError(status, message, culprit=culprit, code=code)
    return JSONResponse(error.payload(), status_code=status, headers={"Cache-Control": "no-store"})


def _location(problem: Mapping[str, Any]) -> str:
    """``body.shared`` / ``limit``: where a validation problem is, without the ``query``/``path`` part."""
    return ".".join(str(part) for part in problem.get("loc", ()) if part not in ("query", "path"))


def _install_error_handlers(app: FastAPI) -> None:
    """Every failure answers JSON ``{"error": {...}}`` naming the culprit; nothing becomes a bare 500."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        response = JSONResponse(exc.payload(), status_code=exc.status, headers=headers)
        return response

    @app.exception_handler(RunNotFoundError)
    async def not_found(request: Request, exc: RunNotFoundError) -> JSONResponse:
        return _error(404, str(exc), "run_id")

    @app.exception_handler(RunLockedError)
    async def locked(request: Request, exc: RunLockedError) -> JSONResponse:
        return _error(409, str(exc), "run_id")

    @app.exception_handler(SerializationError)
    async def unserializable(request: Request, exc: SerializationError) -> JSONResponse:
        return _error(422, str(exc), getattr(exc, "key_path", None) or "patch")

    @app.exception_handler(CheckpointCorruptError)
    async def corrupt(request: Request, exc: CheckpointCorruptError) -> JSONResponse:
        return _error(409, str(exc), "run_id", "corrupt")

    @app.exception_handler(PersistenceError)
    async def persistence(request: Request, exc: PersistenceError) -> JSONResponse:
        return _error(409, str(exc), "run_id")

    @app.exception_handler(KayGraphError)
    async def kaygraph_error(request: Request, exc: KayGraphError) -> JSONResponse:
        return _error(400, f"{type(exc).__name__}: {exc}")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = exc.errors()
        first = problems[0] if problems else {}
        where = _location(first)
        if first.get("type") == "json_invalid":
            message = (
                f"the request body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})"
            )
            return _error(400, message, "body")
        text = "; ".join(f"{_location(problem)}: {problem.get('msg')}" for problem in problems[:5])
        return _error(422, f"invalid request: {text}", where or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {
            404: f"no such endpoint: {request.method} {request.url.path}",
            405: (f"{request.method} is not allowed on {request.url.path}"),
        }.get(exc.status_code, str(exc.detail))
        return _error(exc.status_code, message, "path" if exc.status_code in (404, 405) else None)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        import logging

        logging.getLogger("kaygraph.ext.ui").exception(
            "kaygraph ui: %s %s failed", request.method, request.url.path
        )
        return _error(500, f"internal error while serving {request.url.path}: {type(exc).__name__}: {exc}")


__all__ = ["FRONTEND", "Dashboard", "create_app"]
