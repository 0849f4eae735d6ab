"""RayExecutor: calls run as Ray tasks.

``RayExecutor()`` starts a local Ray on 127.0.0.1 (``num_cpus=workers``, no dashboard) and shuts it
down on close, or reuses the Ray this process already initialized (and leaves it running);
``RayExecutor("ray://head:10001")`` connects with Ray Client, ``RayExecutor("head:6379")`` joins
a cluster as a driver. A task whose worker dies is rerun by Ray (``max_retries``, default 3) and
does not count as an attempt of the node; application errors are never retried by Ray (the node's
``max_retries`` decides). Cancelling a Future calls ``ray.cancel(force=True)``, which stops the
task even while it runs (its worker process is replaced; a gentle interrupt can miss a task Ray
is just starting).

Resources: ``GPU`` becomes ``num_gpus``, ``CPU`` ``num_cpus``, ``memory`` Ray's ``memory`` (bytes),
any other name a Ray custom resource. Large shared inputs go to the object store once
(``ray.put``) and are passed by reference.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any

from kaygraph.utils.imports import require_package
from kaygraph.utils.urls import redact_url

from .. import pickling, remote
from ..base import BaseExecutor, EngineFuture, probe_address
from ..errors import DistributedError, ExecutorConnectionError, WorkerLostError

_ray = require_package("ray", "distributed", "RayExecutor")

_INFO_TTL = 2.0
_RAY_NAMES = {
    "gpu": "num_gpus",
    "num_gpus": "num_gpus",
    "cpu": "num_cpus",
    "num_cpus": "num_cpus",
    "memory": "memory",
}
_NODE_KEYS = {"num_gpus": "GPU", "num_cpus": "CPU", "memory": "memory"}
_done_setups: set[str] = set()


@contextmanager
def _loopback() -> Iterator[None]:
    """Make a local Ray bind 127.0.0.1, not the machine's network address.

    Ray turns ``_node_ip_address="127.0.0.1"`` into the routable address on purpose; its own
    switch for single-machine Ray (used on macOS and Windows) is a module constant, flipped here
    only while the local instance starts. Without that constant (another Ray version) nothing
    changes.
    """
    try:
        from ray._private import ray_constants
    except ImportError:  # pragma: no cover - a Ray without it
        yield
        return
    saved = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if saved is None:  # pragma: no cover
        yield
        return
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def _execute_after_setup(setup: bytes, digest: str, payload: bytes, *shared: Any) -> bytes:
    """:func:`remote.execute`, after running ``worker_setup`` once in this worker process."""
    if digest not in _done_setups:
        remote.run_setup(setup)
        _done_setups.add(digest)
    return remote.execute(payload, *shared)


def _refused(address: str, exc: BaseException) -> str:
    """Why ``ray.init(address)`` failed although the port answered, and what to check.

    Ray's own message for a client the cluster turns away is "ray client connection timeout"
    (after about 30 s of retries); the usual cause is token authentication, which Ray enables on a
    cluster whenever a token exists and which a client only joins when told to.
    """
    what = "Ray Client server" if address.startswith("ray://") else "Ray cluster (GCS)"
    mode = os.environ.get("RAY_AUTH_MODE")
    return (
        f"cannot connect to the {what} at {redact_url(address)} ({type(exc).__name__}: {exc}); its port "
        "answers, so the cluster runs but did not accept this process. If the cluster uses token "
        "authentication, give this process its token: RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<token> "
        f"(or the file ~/.ray/auth_token); RAY_AUTH_MODE is {'unset' if mode is None else repr(mode)} "
        "here. The client must also run the cluster's Ray and Python versions."
    )


class RayExecutor(BaseExecutor):
    """Runs calls on Ray: a local instance, the cluster at ``address``, or the one already initialized."""

    engine = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        object_store_memory: int | None = None,
        max_retries: int = 3,
        init_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.address = address
        self._local_workers = workers
        self._object_store_memory = object_store_memory
        self.max_retries = max_retries
        self._init_options = dict(init_options or {})
        self._owns_ray = False
        self._remote: Any = None
        self._setup: tuple[Any, str] | None = None
        self._info: tuple[float, list[dict[str, Any]]] | None = None
        self._cancel_pool: Any = None
        self._tasks: dict[frozenset[tuple[str, float]] | None, Any] = {}

    def _start(self) -> None:
        if self.address is not None:
            self._probe(self.address)
        if _ray.is_initialized():
            if self.address is not None:
                raise DistributedError(
                    f"RayExecutor({redact_url(self.address)!r}): this process is already connected to a Ray "
                    "cluster; Ray allows one per process. Use RayExecutor() to reuse it, or "
                    "ray.shutdown() first."
                )
        elif self.address is None:
            with _loopback():
                _ray.init(
                    address="local",
                    num_cpus=self._local_workers or os.cpu_count() or 1,
                    include_dashboard=False,
                    object_store_memory=self._object_store_memory,
                    logging_level="WARNING",
                    **self._init_options,
                )
            self._owns_ray = True
        else:
            self._connect(self.address)
        self._remote = _ray.remote(_execute_after_setup if self.worker_setup else remote.execute)
        self._tasks.clear()
        if self.worker_setup is not None:
            setup = pickling.dumps(self.worker_setup)
            self._setup = (_ray.put(setup), hashlib.sha256(setup).hexdigest())

    def _probe(self, address: str) -> None:
        if address == "auto":
            return
        client = address.startswith("ray://")
        what = "Ray Client server" if client else "Ray cluster (GCS)"
        hint = (
            "Check the address and that the head node runs (`ray start --head`"
            + (" with its client server on that port)" if client else ")")
            + ", or use RayExecutor() for a local Ray"
        )
        probe_address(address, self.connect_timeout, what, hint)

    def _connect(self, address: str) -> None:
        host = address.rpartition("://")[2].rpartition(":")[0].strip("[]")
        # A cluster on this machine's loopback (one RayExecutor() started) is joined over loopback;
        # Ray would otherwise dial the machine's network address, where nothing listens.
        local = host in ("127.0.0.1", "localhost", "::1")
        try:
            with _loopback() if local else nullcontext(), warnings.catch_warnings():
                # Ray's "check the ports" warning, when the port did answer: the error below says more.
                warnings.filterwarnings("ignore", "Ray Client connection timed out", UserWarning)
                _ray.init(address=address, logging_level="WARNING", **self._init_options)
        except (OSError, TimeoutError, _ray.exceptions.RayError) as exc:
            raise ExecutorConnectionError(_refused(address, exc), address=redact_url(address)) from exc
        self._owns_ray = True

    def _stop(self) -> None:
        if self._cancel_pool is not None:
            self._cancel_pool.shutdown(wait=True)
            self._cancel_pool = None
        if self._owns_ray and _ray.is_initialized():
            _ray.shutdown()
        self._owns_ray = False

    # -- cluster facts ------------------------------------------------------------------------

    def _nodes(self) -> list[dict[str, Any]]:
        cached = self._info
        if cached is not None and time.monotonic() - cached[0] < _INFO_TTL:
            return cached[1]
        nodes = [node for node in _ray.nodes() if node.get("Alive")]
        self._info = (time.monotonic(), nodes)
        return nodes

    def _slots(self) -> int:
        return int(sum(node.get("Resources", {}).get("CPU", 0) for node in self._nodes()))

    def _engine_lines(self) -> dict[str, str]:
        where = redact_url(self.address) if self.address else "local Ray on 127.0.0.1"
        lines = {"address": where}
        if self._started:
            lines["workers"] = str(self._slots())
        return lines

    @staticmethod
    def _options(resources: Mapping[str, float]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        custom: dict[str, float] = {}
        for key, amount in resources.items():
            name = _RAY_NAMES.get(key.lower())
            if name is None:
                custom[key] = amount
            else:
                options[name] = int(amount) if name == "memory" else amount
        if custom:
            options["resources"] = custom
        return options

    def _unavailable(self, resources: Mapping[str, float]) -> str | None:
        self._info = None
        options = self._options(resources)
        wanted = {_NODE_KEYS[name]: amount for name, amount in options.items() if name in _NODE_KEYS}
        wanted.update(options.get("resources", {}))
        nodes = self._nodes()
        for node in nodes:
            offered = node.get("Resources", {})
            if all(offered.get(name, 0) >= amount for name, amount in wanted.items()):
                return None
        listing = "; ".join(
            f"{node.get('NodeManagerAddress')}: "
            + ", ".join(
                f"{name}={value:g}"
                for name, value in sorted(node.get("Resources", {}).items())
                if not name.startswith("node:")
            )
            for node in nodes
        )
        return (
            f"no node of the Ray cluster has {wanted} (nodes: {listing or 'none'}). Start nodes with "
            "`ray start --num-gpus=1 --resources='{\"name\": 1}'`"
        )

    # -- submitting ---------------------------------------------------------------------------

    def _cancel_later(self, ref: Any) -> None:
        """``ray.cancel`` off the caller's thread: it is an RPC, and a failing batch cancels many."""
        with self._lock:
            if self._cancel_pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._cancel_pool = ThreadPoolExecutor(1, thread_name_prefix="kaygraph-ray-cancel")
            pool = self._cancel_pool
        pool.submit(_ray.cancel, ref, force=True)

    def _put(self, obj: Any) -> Any:
        return _ray.put(obj)

    def _submit(self, payload: bytes, refs: list[Any], resources: Mapping[str, float] | None) -> EngineFuture:
        key = frozenset(resources.items()) if resources else None
        task = self._tasks.get(key)
        if task is None:  # .options() builds a new wrapper (a class): once per resource set, not per task
            options = {"num_cpus": 1, "max_retries": self.max_retries, "retry_exceptions": False}
            if resources:
                options.update(self._options(resources))
            task = self._tasks[key] = self._remote.options(**options)
        if self._setup is not None:
            ref = task.remote(self._setup[0], self._setup[1], payload, *refs)
        else:
            ref = task.remote(payload, *refs)
        future = EngineFuture(lambda: self._cancel_later(ref))

        def done(inner: Any) -> None:
            if inner.cancelled():
                future.cancel()
                return
            error = inner.exception()
            if error is None:
                future.settle(inner.result())
            elif isinstance(error, _ray.exceptions.TaskCancelledError):
                future.cancel()
            elif isinstance(error, (_ray.exceptions.WorkerCrashedError, _ray.exceptions.NodeDiedError)):
                future.settle(
                    error=WorkerLostError(f"Ray gave up on this task: its workers kept dying ({error})")
                )
            else:
                future.settle(error=error)

        ref.future().add_done_callback(done)
        return future


__all__ = ["RayExecutor"]
