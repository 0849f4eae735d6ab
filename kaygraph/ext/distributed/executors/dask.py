"""DaskExecutor: calls run as tasks of a ``dask.distributed`` cluster.

``DaskExecutor()`` starts a LocalCluster on 127.0.0.1 (one single-threaded worker process per
CPU, or ``workers``) and shuts it down on close; ``DaskExecutor("tcp://scheduler:8786")`` joins a
running cluster; ``DaskExecutor(client=client)`` uses your Client and leaves it open. Lost workers
are Dask's business: the scheduler reruns their tasks elsewhere (``distributed.scheduler.
allowed-failures`` times) before the task fails with :class:`~..errors.WorkerLostError`.

Resources map onto Dask worker resources (start workers with ``--resources "GPU=2"``), matched
case-insensitively; ``memory`` and ``CPU`` may also be met by a worker's memory limit and threads.
Large shared inputs are ``scatter``-ed once and passed as futures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from kaygraph.utils.imports import require_package
from kaygraph.utils.urls import redact_url

from .. import pickling, remote
from ..base import BaseExecutor, EngineFuture, probe_address
from ..errors import DistributedError, ExecutorConnectionError, WorkerLostError

_distributed = require_package("distributed", "distributed", "DaskExecutor", package="dask[distributed]")

_INFO_TTL = 2.0


def _ask_identity(address: str, timeout: float) -> None:
    """Ask the scheduler who it is, giving up after ``timeout`` seconds.

    ``Client(address, timeout=...)`` waits for ever on a server that accepts connections but never
    answers (a wrong port, a hung scheduler); this bounded exchange runs first, in a thread of its
    own so that it also works when the caller runs an event loop.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    async def identity() -> None:
        async def exchange() -> None:
            comm = await _distributed.comm.connect(address, timeout=timeout)
            try:
                await comm.write({"op": "identity", "reply": True})
                await comm.read()
            finally:
                comm.abort()

        try:
            await asyncio.wait_for(exchange(), timeout)
        except asyncio.TimeoutError as exc:
            raise TimeoutError(f"no answer within {timeout:g} s") from exc

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kaygraph-dask-probe") as pool:
        pool.submit(asyncio.run, identity()).result()


class _WorkerSetup(_distributed.WorkerPlugin):  # type: ignore[misc,name-defined]
    """Runs the executor's ``worker_setup`` in every worker, including ones that join later."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def setup(self, worker: Any) -> None:
        remote.run_setup(self.payload)


class DaskExecutor(BaseExecutor):
    """Runs calls on a Dask cluster: a local one, the one at ``address``, or ``client``'s."""

    engine = "dask"

    def __init__(
        self,
        address: str | None = None,
        *,
        client: Any = None,
        workers: int | None = None,
        cluster_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if address is not None and client is not None:
            raise ValueError("DaskExecutor: give address= or client=, not both")
        if address is not None and address.startswith("dask://"):
            address = "tcp://" + address[len("dask://") :]
        self.address = address
        self._client = client
        self._owns_client = client is None
        self._cluster: Any = None
        self._local_workers = workers
        self._cluster_options = dict(cluster_options or {})
        self._info: tuple[float, dict[str, Any]] | None = None
        self._resource_names: dict[str, str | None] = {}

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` (starts the executor if needed)."""
        self.start()
        return self._client

    # -- lifecycle ----------------------------------------------------------------------------

    def _start(self) -> None:
        if self._client is None:
            if self.address is None:
                self._cluster = self._start_local_cluster()
                self._client = _distributed.Client(self._cluster, set_as_default=False)
            else:
                self._client = self._connect(self.address)
        if self.worker_setup is not None:
            self._client.register_plugin(
                _WorkerSetup(pickling.dumps(self.worker_setup)), name="kaygraph-setup"
            )

    def _start_local_cluster(self) -> Any:
        import os

        options = {
            "n_workers": self._local_workers or os.cpu_count() or 1,
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": None,
            # The scheduler serves its HTTP API even without a dashboard, on 8787 unless told:
            # a free loopback port instead, so two clusters on one machine never collide.
            "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"},
            "silence_logs": logging.WARNING,
            **self._cluster_options,
        }
        try:
            return _distributed.LocalCluster(**options)
        except Exception as exc:
            chain, cause = [], exc
            while cause is not None:
                chain.append(str(cause))
                cause = cause.__cause__ or cause.__context__
            if any("bootstrapping phase" in text for text in chain):
                raise DistributedError(
                    "DaskExecutor could not start its local worker processes: the script that creates "
                    "it is re-imported by each worker. Put the code that creates the executor under "
                    '`if __name__ == "__main__":`, or pass the address of a running cluster.'
                ) from exc
            raise

    def _connect(self, address: str) -> Any:
        hint = (
            "Check the address and that `dask scheduler` runs there, or use DaskExecutor() "
            "for a local cluster"
        )
        probe_address(address, self.connect_timeout, "Dask scheduler", hint)
        try:
            _ask_identity(address, self.connect_timeout)
            return _distributed.Client(address, timeout=self.connect_timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ExecutorConnectionError(
                f"cannot connect to the Dask scheduler at {redact_url(address)} within "
                f"{self.connect_timeout:g} s ({type(exc).__name__}: {exc}). {hint}",
                address=redact_url(address),
                timeout=self.connect_timeout,
            ) from exc

    def _stop(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    # -- cluster facts ------------------------------------------------------------------------

    def _workers_info(self) -> dict[str, Any]:
        cached = self._info
        if cached is not None and time.monotonic() - cached[0] < _INFO_TTL:
            return cached[1]
        info = self._client.scheduler_info(n_workers=-1)["workers"]
        self._info = (time.monotonic(), info)
        return info

    def _slots(self) -> int:
        return sum(int(worker.get("nthreads", 1)) for worker in self._workers_info().values())

    def _engine_lines(self) -> dict[str, str]:
        if self.address:
            where = redact_url(self.address)
        elif self._client is not None and self._cluster is None:
            where = f"your client ({redact_url(str(self._client.scheduler.address))})"
        else:
            where = f"local cluster on 127.0.0.1 ({self._local_workers or 'one worker per CPU'})"
        lines = {"address": where}
        if self._started:
            lines["workers"] = str(self._slots())
        return lines

    def _unavailable(self, resources: Mapping[str, float]) -> str | None:
        self._info = None  # ask the scheduler afresh
        workers = self._workers_info()
        for info in workers.values():
            declared = {name.lower(): name for name in info.get("resources") or {}}
            names: dict[str, str | None] = {}
            for key, amount in resources.items():
                name = declared.get(key.lower())
                if name is not None and info["resources"][name] >= amount:
                    names[key] = name
                elif name is None and key.lower() == "memory" and (info.get("memory_limit") or 0) >= amount:
                    names[key] = None  # met by the worker's memory limit; not a Dask resource
                elif (
                    name is None and key.lower() in ("cpu", "num_cpus") and info.get("nthreads", 1) >= amount
                ):
                    names[key] = None
                else:
                    break
            else:
                self._resource_names.update(names)
                return None
        offered = "; ".join(
            f"{address}: resources={info.get('resources') or {}}, memory_limit={info.get('memory_limit')}, "
            f"nthreads={info.get('nthreads')}"
            for address, info in workers.items()
        )
        return (
            f"no worker of the Dask cluster has them (workers: {offered or 'none'}). Start workers "
            'with `dask worker SCHEDULER --resources "GPU=1"`'
        )

    # -- submitting ---------------------------------------------------------------------------

    def _put(self, obj: Any) -> Any:
        return self._client.scatter(obj, hash=False)

    def _submit(self, payload: bytes, refs: list[Any], resources: Mapping[str, float] | None) -> EngineFuture:
        dask_resources = None
        if resources:
            dask_resources = {
                self._resource_names[key]: amount
                for key, amount in resources.items()
                if self._resource_names.get(key) is not None
            } or None
        task = self._client.submit(remote.execute, payload, *refs, pure=False, resources=dask_resources)
        future = EngineFuture(task.cancel)

        def done(task: Any) -> None:
            status = task.status
            if status == "cancelled":
                future.cancel()
                return
            try:
                data = task.result()
            except Exception as exc:
                if type(exc).__name__ == "KilledWorker":
                    exc = WorkerLostError(f"Dask gave up on this task: its workers kept dying ({exc})")
                future.settle(error=exc)
            else:
                future.settle(data)
            finally:
                task.release()

        task.add_done_callback(done)
        return future


__all__ = ["DaskExecutor"]
