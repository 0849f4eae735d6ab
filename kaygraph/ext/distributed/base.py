"""What every executor shares: packing calls (pickling check, shared objects sent once, trace
context), chunking, resource checks, Futures the caller can cancel, and the start/close lifecycle.

An engine module subclasses :class:`BaseExecutor` and implements five small methods: ``_start``,
``_stop``, ``_slots``, ``_put`` (an object into the engine's store, once) and ``_submit`` (the
payload and the shared references, to an :class:`EngineFuture`), plus ``_unavailable`` for the
resources no worker offers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, InvalidStateError
from typing import Any, TypeVar

from kaygraph.utils.urls import redact_url

from . import pickling, remote, tracecontext
from .abc import ClusterExecutor
from .errors import ExecutorClosedError, ExecutorConnectionError, ResourceUnavailableError

logger = logging.getLogger("kaygraph.ext.distributed")

_Executor = TypeVar("_Executor", bound="BaseExecutor")

#: Leaf objects (bytes, str, NumPy arrays) at least this large go to the cluster once, by reference.
DEFAULT_SHARE_THRESHOLD = 1 << 20
#: Automatic chunking aims at this many tasks per worker slot: enough to balance uneven items,
#: few enough that each task carries many tiny items.
TASKS_PER_SLOT = 4
#: At most this many shared objects are remembered per executor (oldest forgotten first).
_SHARED_CACHE_SIZE = 32
#: A resource check is trusted this many seconds before the workers are asked again.
_RESOURCE_CHECK_TTL = 5.0


class EngineFuture(Future):  # type: ignore[type-arg]
    """A Future settled from the engine's own; ``cancel()`` also cancels the work on the engine
    (Ray: ``ray.cancel``, which interrupts a running task; Dask: releases the task)."""

    def __init__(self, cancel_engine: Callable[[], Any] | None = None) -> None:
        super().__init__()
        self._cancel_engine = cancel_engine
        self._cancel_lock = threading.Lock()

    def cancel(self) -> bool:
        # Cancelled by the caller and again by the engine's own "task cancelled" callback (or by
        # two threads): only the first cancel notifies waiters and cancels on the engine.
        with self._cancel_lock:
            already = self.cancelled()
            cancelled = super().cancel()
            if not cancelled or already:
                return cancelled
            # What an executor does for a Future it cancels: without it, concurrent.futures.wait()
            # and as_completed() never see this one as done.
            self.set_running_or_notify_cancel()
        if self._cancel_engine is not None:
            try:
                self._cancel_engine()
            except Exception as exc:  # the caller's Future is cancelled either way
                logger.debug("cancelling a task on the engine failed: %s", exc)
        return cancelled

    def settle(self, data: bytes | None = None, error: BaseException | None = None) -> None:
        """Complete with the packed outcome ``data`` of :func:`remote.execute`, or with ``error``."""
        if self.cancelled():
            return
        try:
            if error is None:
                assert data is not None
                tag, value = remote.unpack(data)
                if tag == remote.RAISED:
                    error = value
                else:
                    self.set_result(value)
                    return
            self.set_exception(error)
        except InvalidStateError:  # cancelled meanwhile
            pass
        except Exception as exc:  # a result that does not unpickle here (a class the driver lacks)
            try:
                self.set_exception(exc)
            except InvalidStateError:
                pass


def probe_address(address: str, timeout: float, what: str, hint: str) -> None:
    """Fail fast, within ``timeout`` seconds, when nothing listens at ``address`` (``scheme://host:port``)."""
    import socket
    from urllib.parse import urlsplit

    target = address if "://" in address else f"tcp://{address}"
    try:
        parts = urlsplit(target)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ExecutorConnectionError(
            f"{what} address {redact_url(address)!r} is not valid ({exc}); expected scheme://host:port",
            address=redact_url(address),
        ) from exc
    if not host or not port:
        raise ExecutorConnectionError(
            f"{what} address {redact_url(address)!r} lacks a host or port; expected scheme://host:port",
            address=redact_url(address),
        )
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ExecutorConnectionError(
            f"cannot reach the {what} at {redact_url(address)} within {timeout:g} s "
            f"({type(exc).__name__}: {exc}). {hint}",
            address=redact_url(address),
            timeout=timeout,
        ) from exc


class BaseExecutor(ClusterExecutor):
    """Shared implementation of :class:`ClusterExecutor`; see the module docstring.

    Options every executor takes:

    - ``chunk_size``: batch items per task; None picks it from the item count and the worker
      slots (about :data:`TASKS_PER_SLOT` tasks per slot). A node's own ``chunk_size`` wins.
    - ``max_in_flight``: unfinished tasks at once; None means two per worker slot.
    - ``share_threshold``: bytes from which a ``bytes``/``str``/array argument goes to the cluster
      once and travels by reference (None or 0: never).
    - ``connect_timeout``: seconds to reach a remote cluster before failing with its address.
    - ``worker_setup``: a callable run once in every worker process (e.g. to set up tracing).
    """

    engine = "base"

    def __init__(
        self,
        *,
        chunk_size: int | None = None,
        max_in_flight: int | None = None,
        share_threshold: int | None = DEFAULT_SHARE_THRESHOLD,
        connect_timeout: float = 10.0,
        worker_setup: Callable[[], Any] | None = None,
    ) -> None:
        for name, value in (("chunk_size", chunk_size), ("max_in_flight", max_in_flight)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{type(self).__name__}: {name} must be an int >= 1 or None, got {value!r}")
        if not isinstance(connect_timeout, (int, float)) or connect_timeout <= 0:
            raise ValueError(
                f"{type(self).__name__}: connect_timeout must be seconds > 0, got {connect_timeout!r}"
            )
        self._chunk_size = chunk_size
        self._max_in_flight = max_in_flight
        self.share_threshold = share_threshold or None
        self.connect_timeout = float(connect_timeout)
        self.worker_setup = worker_setup
        self._lock = threading.RLock()
        self._started = False
        self._closed = False
        self._pending: set[EngineFuture] = set()
        self._shared: OrderedDict[int, tuple[Any, Any]] = OrderedDict()
        self._resources_ok: dict[frozenset[tuple[str, float]], float] = {}
        #: Counters: tasks submitted, payload bytes sent, shared objects put and their bytes.
        self.stats = {"tasks": 0, "payload_bytes": 0, "shared_objects": 0, "shared_bytes": 0}

    # -- engine hooks -------------------------------------------------------------------------

    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError

    def _slots(self) -> int:
        raise NotImplementedError

    def _put(self, obj: Any) -> Any:
        """A reference to ``obj`` in the engine's store (the object itself where there is none)."""
        return obj

    def _submit(self, payload: bytes, refs: list[Any], resources: Mapping[str, float] | None) -> EngineFuture:
        raise NotImplementedError

    def _unavailable(self, resources: Mapping[str, float]) -> str | None:
        """Why no worker can take a task needing ``resources`` (None: some worker can)."""
        return None

    def _engine_lines(self) -> dict[str, str]:
        return {}

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self: _Executor) -> _Executor:
        with self._lock:
            if self._closed:
                raise ExecutorClosedError(f"{self!r} is closed; create a new executor")
            if not self._started:
                self._start()
                self._started = True
        return self

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending, self._pending = list(self._pending), set()
            self._shared.clear()
            started, self._started = self._started, False
        for future in pending:
            future.cancel()
        if started:
            self._stop()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def workers(self) -> int:
        self.start()
        return max(1, self._slots())

    @property  # type: ignore[override]
    def max_in_flight(self) -> int:
        return self._max_in_flight or 2 * self.workers

    def chunk_size(self, n_items: int) -> int:
        if self._chunk_size is not None:
            return self._chunk_size
        return max(1, n_items // (self.workers * TASKS_PER_SLOT))

    def describe(self) -> dict[str, str]:
        lines = {"executor": self.engine, **self._engine_lines()}
        lines["chunk_size"] = str(self._chunk_size or f"auto (~{TASKS_PER_SLOT} tasks per worker slot)")
        lines["max_in_flight"] = str(self._max_in_flight or "2 per worker slot")
        return lines

    def __repr__(self) -> str:
        state = "closed" if self._closed else "started" if self._started else "not started"
        return f"<{type(self).__name__} {state}>"

    # -- submitting ---------------------------------------------------------------------------

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, resources: Mapping[str, float] | None = None
    ) -> Future[Any]:
        if self._closed:
            raise ExecutorClosedError(f"{self!r} is closed; submit to a new executor")
        self.start()
        label, node_id = pickling.describe_args(fn, args)
        if resources:
            self._check_resources(dict(resources), node_id)
        shared: list[Any] = []
        attributes = {"kaygraph.node.id": node_id} if node_id else {}
        payload = pickling.dumps_call(
            fn,
            args,
            (tracecontext.capture(), label, attributes),
            share_threshold=self.share_threshold,
            shared=shared,
        )
        refs = [self._shared_ref(obj) for obj in shared]
        future = self._submit(payload, refs, resources or None)
        with self._lock:
            self.stats["tasks"] += 1
            self.stats["payload_bytes"] += len(payload)
            if self._closed:  # closed while we submitted
                future.cancel()
            else:
                self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.discard(future)  # type: ignore[arg-type]

    def _shared_ref(self, obj: Any) -> Any:
        with self._lock:
            entry = self._shared.get(id(obj))
            if entry is not None and entry[0] is obj:
                self._shared.move_to_end(id(obj))
                return entry[1]
        ref = self._put(obj)
        with self._lock:
            self._shared[id(obj)] = (obj, ref)
            self.stats["shared_objects"] += 1
            self.stats["shared_bytes"] += int(getattr(obj, "nbytes", None) or len(obj))
            while len(self._shared) > _SHARED_CACHE_SIZE:
                self._shared.popitem(last=False)
        return ref

    def _check_resources(self, resources: dict[str, float], node_id: str | None) -> None:
        key = frozenset(resources.items())
        checked = self._resources_ok.get(key)
        if checked is not None and time.monotonic() - checked < _RESOURCE_CHECK_TTL:
            return
        why = self._unavailable(resources)
        if why is not None:
            who = f"node {node_id!r}" if node_id else "the task"
            raise ResourceUnavailableError(
                f"{who} asks for resources {resources!r}, but {why}. Give workers these resources, "
                f"or lower the node's resources.",
                resources=resources,
                node_id=node_id,
            )
        self._resources_ok[key] = time.monotonic()


__all__ = [
    "DEFAULT_SHARE_THRESHOLD",
    "TASKS_PER_SLOT",
    "BaseExecutor",
    "EngineFuture",
    "probe_address",
]
