"""Structured (JSON) logs of run and node events that join traces: each line carries the run id,
the node id and path, and the trace and span ids of the step that wrote it.

Standard ``logging`` only: :class:`JsonLogListener` writes records to the ``kaygraph.events``
logger, :class:`JsonFormatter` renders any record (yours too) as one JSON object per line, and
:func:`configure_json_logs` wires the two to a stream. A line looks like::

    {"time": "2026-11-26T09:12:03.215Z", "level": "INFO", "logger": "kaygraph.events",
     "message": "node finished", "event": "node_end", "run_id": "5f0c...", "graph": "rag",
     "node_id": "answer", "node_path": "answer", "action": "done", "duration_ms": 812.4,
     "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}

Trace and span ids come from the OpenTelemetry span current when the event fires. Used through
:func:`~kaygraph.ext.observability.instrument` (``logs=True``) they are the node's own span,
because the listener is then called inside the span's lifetime on both start and end events.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from kaygraph.core import RunListener

from ._common import path_text

if TYPE_CHECKING:
    from kaygraph.core.base_node import BaseNode
    from kaygraph.core.events import Path, RunContext
    from kaygraph.core.graph import Graph

__all__ = [
    "EVENT_LOGGER",
    "JsonFormatter",
    "JsonLogListener",
    "configure_json_logs",
    "current_trace_ids",
    "remove_json_logs",
]

#: The logger the listener writes to; attach your own handlers to it if you prefer.
EVENT_LOGGER = "kaygraph.events"


def _trace_id_reader() -> Callable[[], dict[str, str]]:
    """A function returning the current trace and span ids, or {} without OpenTelemetry.

    Log lines are useful without tracing, so a missing OpenTelemetry only drops the ids.
    """
    try:
        from opentelemetry import trace
    except ImportError:
        return dict

    get_current_span = trace.get_current_span

    def read() -> dict[str, str]:
        span_context = get_current_span().get_span_context()
        if not span_context.is_valid:
            return {}
        return {
            "trace_id": format(span_context.trace_id, "032x"),
            "span_id": format(span_context.span_id, "016x"),
        }

    return read


#: The trace and span ids of the current OpenTelemetry span, as hex strings ({} when none).
current_trace_ids = _trace_id_reader()

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, trace ids, fields.

    Fields come from the record's ``kaygraph`` attribute (set by :class:`JsonLogListener`) and
    from any ``extra=`` of your own log calls. When the record names no trace, the ids of the
    span current while formatting are added, so your own log lines inside a node join its trace.
    """

    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        payload: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", created) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and key != "kaygraph":
                payload[key] = value
        fields = getattr(record, "kaygraph", None)
        if fields:
            payload.update(fields)
        if "trace_id" not in payload:
            payload.update(current_trace_ids())
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


#: Per logger: the handlers configure_json_logs attached and not yet removed, and the logger's
#: (level, propagate) from before the first of them, restored when the last one goes.
_attached: dict[str, list[logging.Handler]] = {}
_saved: dict[str, tuple[int, bool, int | None]] = {}
_attached_lock = threading.Lock()


def configure_json_logs(
    stream: TextIO | None = None, *, level: int = logging.INFO, logger: str = EVENT_LOGGER
) -> logging.Handler:
    """Send ``logger``'s records to ``stream`` (default stderr) as JSON lines; returns the handler.

    The logger stops propagating to the root logger, so the events are not printed a second time
    by a plain-text handler there. Its level becomes ``level`` only if you left it unset
    (``NOTSET``): a level you set yourself is kept. Undo with :func:`remove_json_logs`, which
    restores the level and propagation the logger had before.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    target = logging.getLogger(logger)
    with _attached_lock:
        ours = _attached.setdefault(logger, [])
        if not ours:
            set_level = level if target.level == logging.NOTSET else None
            _saved[logger] = (target.level, target.propagate, set_level)
            if set_level is not None:
                target.setLevel(set_level)
            target.propagate = False
        ours.append(handler)
        target.addHandler(handler)
    return handler


def remove_json_logs(handler: logging.Handler, *, logger: str = EVENT_LOGGER) -> None:
    """Detach a handler added by :func:`configure_json_logs`; idempotent.

    When it was the last such handler on ``logger``, the logger gets back the propagation it had
    before, and its level too unless you changed it in the meantime.
    """
    target = logging.getLogger(logger)
    with _attached_lock:
        target.removeHandler(handler)
        ours = _attached.get(logger, [])
        if handler not in ours:
            return
        ours.remove(handler)
        if ours:
            return
        del _attached[logger]
        level, propagate, set_level = _saved.pop(logger)
        target.propagate = propagate
        if set_level is not None and target.level == set_level:
            target.setLevel(level)


class JsonLogListener(RunListener):
    """Logs run, node, retry and batch-item events with their ids (fields in the module docs).

    Levels: node and item starts at DEBUG, run events and node ends at INFO, retries at WARNING,
    failures at ERROR, so the default INFO level gives one line per step.
    """

    def __init__(self, logger: logging.Logger | str = EVENT_LOGGER) -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger

    def _log(self, level: int, message: str, run: RunContext, fields: dict[str, Any]) -> None:
        if not self.logger.isEnabledFor(level):
            return
        fields["run_id"] = run.run_id
        fields["graph"] = run.graph.name
        fields.update(current_trace_ids())
        self.logger.log(level, message, extra={"kaygraph": fields})

    @staticmethod
    def _node_fields(event: str, node_id: str, path: Path) -> dict[str, Any]:
        return {"event": event, "node_id": node_id, "node_path": path_text(path)}

    def on_run_start(self, *, run: RunContext, graph: Graph, **kwargs: Any) -> None:
        self._log(logging.INFO, "run started", run, {"event": "run_start"})

    def on_run_end(
        self, *, run: RunContext, action: Any, error: BaseException | None, duration: float, **kwargs: Any
    ) -> None:
        fields: dict[str, Any] = {"event": "run_end", "duration_ms": round(duration * 1000, 3)}
        if error is None:
            fields["action"] = action
            self._log(logging.INFO, "run finished", run, fields)
        else:
            fields.update(error_type=type(error).__name__, error=str(error))
            self._log(logging.ERROR, "run failed", run, fields)

    def on_node_start(self, *, run: RunContext, node_id: str, path: Path, **kwargs: Any) -> None:
        self._log(logging.DEBUG, "node started", run, self._node_fields("node_start", node_id, path))

    def on_node_end(
        self,
        *,
        run: RunContext,
        node_id: str,
        path: Path,
        action: Any,
        duration: float,
        next_node_id: str | None,
        **kwargs: Any,
    ) -> None:
        fields = self._node_fields("node_end", node_id, path)
        fields.update(action=action, next_node_id=next_node_id, duration_ms=round(duration * 1000, 3))
        self._log(logging.INFO, "node finished", run, fields)

    def on_node_error(
        self,
        *,
        run: RunContext,
        node_id: str,
        path: Path,
        error: BaseException,
        attempts: int | None,
        duration: float,
        **kwargs: Any,
    ) -> None:
        fields = self._node_fields("node_error", node_id, path)
        fields.update(
            error_type=type(error).__name__,
            error=str(error),
            attempts=attempts,
            duration_ms=round(duration * 1000, 3),
        )
        self._log(logging.ERROR, "node failed", run, fields)

    def on_retry(
        self,
        *,
        run: RunContext,
        node_id: str,
        path: Path,
        attempt: int,
        error: BaseException,
        wait: float,
        **kwargs: Any,
    ) -> None:
        fields = self._node_fields("retry", node_id, path)
        fields.update(attempt=attempt, error_type=type(error).__name__, error=str(error), wait=wait)
        self._log(logging.WARNING, "node attempt failed, retrying", run, fields)

    def on_batch_item_start(
        self, *, run: RunContext, node_id: str, path: Path, index: int, **kwargs: Any
    ) -> None:
        fields = self._node_fields("batch_item_start", node_id, path)
        fields["index"] = index
        self._log(logging.DEBUG, "batch item started", run, fields)

    def on_batch_item_end(
        self,
        *,
        run: RunContext,
        node: BaseNode,
        node_id: str,
        path: Path,
        index: int,
        error: BaseException | None,
        duration: float,
        **kwargs: Any,
    ) -> None:
        fields = self._node_fields("batch_item_end", node_id, path)
        fields.update(index=index, duration_ms=round(duration * 1000, 3))
        if error is None:
            self._log(logging.DEBUG, "batch item finished", run, fields)
        else:
            fields.update(error_type=type(error).__name__, error=str(error))
            self._log(logging.ERROR, "batch item failed", run, fields)
