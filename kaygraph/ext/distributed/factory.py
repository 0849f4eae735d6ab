"""Choosing an executor: from a URL, from the ``distributed.*`` configuration, or passed in directly.

URLs: ``local`` (no executor: today's in-process behaviour), ``process`` or ``process://4``
(four local processes), ``dask`` (a local Dask cluster), ``tcp://host:8786`` or
``dask://host:8786`` (a running Dask scheduler), ``ray`` (a local Ray, or the one this process
already initialized), ``ray://host:10001`` (Ray Client), ``ray+gcs://host:6379`` (join a Ray
cluster as a driver).
"""

from __future__ import annotations

from typing import Any

from kaygraph.utils.urls import redact_url

from .abc import ClusterExecutor
from .errors import DistributedError

#: The ``distributed.*`` settings and their defaults (used when ``kaygraph.config`` is unavailable).
DEFAULTS: dict[str, Any] = {
    "executor": "local",
    "address": None,
    "workers": None,
    "chunk_size": None,
    "max_in_flight": None,
    "connect_timeout": 10,
    "share_threshold": 1 << 20,
}

_KINDS = ("local", "process", "dask", "ray")


def setting(name: str) -> Any:
    """The value of ``distributed.<name>`` from KayGraph's configuration, or its default."""
    try:
        from kaygraph.config import get_config
    except ImportError:
        return DEFAULTS[name]
    return get_config().get(f"distributed.{name}", DEFAULTS[name])


def _configured_options() -> dict[str, Any]:
    return {
        "chunk_size": setting("chunk_size"),
        "max_in_flight": setting("max_in_flight"),
        "connect_timeout": setting("connect_timeout"),
        "share_threshold": setting("share_threshold"),
    }


def _split(target: str) -> tuple[str, str | None]:
    """``(kind, address)`` of an executor URL."""
    text = target.strip()
    if text in _KINDS:
        return text, None
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise _bad_url(target)
    if scheme == "process":
        return "process", rest or None
    if scheme in ("tcp", "tls", "dask"):
        return "dask", (f"{'tls' if scheme == 'tls' else 'tcp'}://{rest}" if rest else None)
    if scheme == "ray":
        return "ray", (text if rest else None)
    if scheme == "ray+gcs":
        return "ray", rest
    raise _bad_url(target)


def _bad_url(target: str) -> DistributedError:
    import difflib

    head = target.partition("://")[0]
    close = difflib.get_close_matches(head, [*_KINDS, "tcp", "ray+gcs"], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return DistributedError(
        f"unknown executor {redact_url(target)!r}.{hint} Use local, process[://N], dask, tcp://host:8786, "
        "ray, ray://host:10001 or ray+gcs://host:6379."
    )


def open_executor(target: str | ClusterExecutor | None = None, **options: Any) -> ClusterExecutor | None:
    """An executor from an instance (returned as is), a URL, or None (the configured one).

    ``local`` gives None: graphs then run as without an executor. ``options`` (``workers``,
    ``chunk_size``, ``max_in_flight``, ...) override the ``distributed.*`` settings. The executor
    connects on first use (or ``start()``); close it, or use it in a ``with`` block.

    >>> open_executor("local") is None
    True
    >>> open_executor("process://2")
    <ProcessExecutor not started>
    """
    if isinstance(target, ClusterExecutor):
        return target
    if target is None:
        kind, address = setting("executor"), setting("address")
        if kind == "dask" and address and not address.startswith(("tcp://", "tls://", "dask://")):
            address = f"tcp://{address}"
    elif isinstance(target, str):
        kind, address = _split(target)
    else:
        raise TypeError(f"open_executor() takes a URL or an executor, got {type(target).__name__}")
    merged = {**{k: v for k, v in _configured_options().items() if v is not None}, **options}
    workers = merged.pop("workers", None) or setting("workers")
    if kind == "local":
        return None
    if kind == "process":
        from .executors.process import ProcessExecutor

        count = int(address) if address and address.isdigit() else workers
        if address and not address.isdigit():
            raise DistributedError(f"process://N takes a number of workers, got {target!r}")
        return ProcessExecutor(count, **merged)
    if kind == "dask":
        from .executors.dask import DaskExecutor

        return DaskExecutor(address, workers=None if address else workers, **merged)
    from .executors.ray import RayExecutor

    return RayExecutor(address, workers=None if address else workers, **merged)


__all__ = ["DEFAULTS", "open_executor", "setting"]
