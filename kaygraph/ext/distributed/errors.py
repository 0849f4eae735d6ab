"""Errors of the distributed extension; each says what went wrong, with the culprit, and the fix."""

from __future__ import annotations

from kaygraph.core.exceptions import KayGraphError


class DistributedError(KayGraphError):
    """Base class of every error the distributed extension raises itself."""


class UnpicklableError(DistributedError, TypeError):
    """Something about to be sent to the workers cannot be pickled; raised before anything is submitted.

    ``path`` is the attribute path of the culprit (``"Summarize.client._lock"``), ``node_id`` the
    node it belongs to (None when it is not a node's), ``culprit_type`` the type that failed.
    """

    def __init__(
        self, message: str, *, path: str, node_id: str | None = None, culprit_type: str | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.node_id = node_id
        self.culprit_type = culprit_type


class ExecutorConnectionError(DistributedError, ConnectionError):
    """The cluster at ``address`` could not be reached (or did not answer) within ``timeout`` seconds."""

    def __init__(self, message: str, *, address: str, timeout: float | None = None) -> None:
        super().__init__(message)
        self.address = address
        self.timeout = timeout


class ResourceUnavailableError(DistributedError):
    """No worker offers the ``resources`` a node asked for; raised instead of waiting for ever."""

    def __init__(self, message: str, *, resources: dict[str, float], node_id: str | None = None) -> None:
        super().__init__(message)
        self.resources = resources
        self.node_id = node_id


class WorkerLostError(DistributedError):
    """A task's workers kept dying: the engine gave up retrying it on other workers."""


class RemoteError(DistributedError):
    """An exception raised on a worker that could not travel back itself (it does not pickle).

    ``remote_type`` is the qualified name of the original exception class; the message and the
    worker's traceback are kept in the text.
    """

    def __init__(self, message: str, *, remote_type: str) -> None:
        super().__init__(message)
        self.remote_type = remote_type

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_remote_error, (str(self), self.remote_type))


def _rebuild_remote_error(message: str, remote_type: str) -> RemoteError:
    return RemoteError(message, remote_type=remote_type)


class ExecutorClosedError(DistributedError, RuntimeError):
    """``submit`` was called on an executor after it was closed."""


__all__ = [
    "DistributedError",
    "ExecutorClosedError",
    "ExecutorConnectionError",
    "RemoteError",
    "ResourceUnavailableError",
    "UnpicklableError",
    "WorkerLostError",
]
