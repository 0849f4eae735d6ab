"""Every exception KayGraph raises for its own failures.

A node's own exceptions are never wrapped: they propagate with their original type and carry a
PEP 678 note naming the failing node. The classes below are for what the framework itself
detects. Each keeps its context (node id, key, source, ...) as attributes so callers can act on it
without parsing the message.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any


class KayGraphError(Exception):
    """Base class of every error KayGraph raises itself."""


def add_note(exc: BaseException, note: str) -> None:
    """PEP 678 note, also on Python 3.10 (which stores but does not print ``__notes__``)."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # pragma: no cover - Python 3.10
        try:
            exc.__notes__ = [*getattr(exc, "__notes__", ()), note]  # type: ignore[attr-defined]
        except AttributeError:
            pass


def call_each(functions: Iterable[Callable[..., Any]], kwargs: dict[str, Any] | None = None) -> None:
    """Call every function with ``kwargs`` even if some raise; then raise the first error.

    Listeners and cleanups use it, so one failing callee never leaves the others uncalled.
    """
    first_error: BaseException | None = None
    for function in functions:
        try:
            if kwargs is None:
                function()
            else:
                function(**kwargs)
        except BaseException as exc:
            if first_error is None:
                first_error = exc
    if first_error is not None:
        raise first_error


# -- core ------------------------------------------------------------------------------------


class NodeExecutionError(KayGraphError, RuntimeError):
    """A node cannot be executed the way it was asked to (e.g. an AsyncNode run synchronously).

    Also a ``RuntimeError`` so PocketFlow code that caught that keeps working.
    """

    def __init__(self, message: str, *, node_id: str | None = None) -> None:
        super().__init__(message)
        self.node_id = node_id


class GraphExecutionError(KayGraphError, RuntimeError):
    """A graph run failed for a reason of the engine's own: no start node, a step limit, a bad action."""

    def __init__(
        self, message: str, *, graph: str | None = None, node_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.graph = graph
        self.node_id = node_id


class GraphDefinitionError(KayGraphError, ValueError):
    """A graph or node was built wrongly (duplicate node ids, a bad retry count, ...)."""


class InvalidActionError(GraphDefinitionError, TypeError):
    """An edge label is not a string (``node - 5 >> other``). Also a ``TypeError``, as in PocketFlow."""


class ValidationError(KayGraphError, ValueError):
    """A :class:`~kaygraph.core.validated_node.ValidatedNode` rejected its input or output."""

    def __init__(
        self, message: str, *, node_id: str | None = None, stage: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.node_id = node_id
        self.stage = stage

    def __str__(self) -> str:
        if self.node_id is None:
            return self.message
        return f"node {self.node_id!r} rejected its {self.stage or 'data'}: {self.message}"


class RunCancelled(KayGraphError):
    """A run was stopped by its :class:`~kaygraph.core.cancel.CancelToken`.

    ``reason`` is what ``token.cancel(reason)`` said, ``node_id`` the node the run stopped at (the
    one about to run, or the one whose retry wait or batch item was interrupted), ``run_id`` the
    run's id. A cancelled durable run can be resumed.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        node_id: str | None = None,
        run_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.node_id = node_id
        self.run_id = run_id


class GraphReferenceError(KayGraphError, ImportError):
    """``load_graph("package.module:attr")`` could not find a graph there; names the module or
    attribute and what was found instead."""

    def __init__(self, message: str, *, ref: str | None = None) -> None:
        super().__init__(message)
        self.ref = ref


class ListenerError(KayGraphError, TypeError):
    """A lifecycle listener was rejected when it was attached (unknown hook, wrong signature)."""


def install_hint(extra: str, *, quoted: bool = True) -> str:
    """The shell command that installs ``extra``; quoted by default so zsh does not glob the brackets.

    >>> install_hint("persistence")
    "pip install 'kaygraph[persistence]'"
    >>> install_hint("scheduler", quoted=False)
    'pip install kaygraph[scheduler]'
    """
    target = f"kaygraph[{extra}]"
    return f"pip install '{target}'" if quoted else f"pip install {target}"


# -- configuration, extensions, plugins --------------------------------------------------------


class ConfigurationError(KayGraphError, ValueError):
    """A configuration value or file is invalid; names the key, the value and where it came from."""

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        value: Any = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message)
        self.key = key
        self.value = value
        self.source = source


class ExtensionError(KayGraphError):
    """An extension failed to initialize, shut down or look itself up."""


class UnknownExtensionError(ExtensionError, LookupError, ImportError):
    """No extension has this name; the message lists the known ones. A ``LookupError`` and, since
    it is raised for ``LazyLoader("kaygraph.ext.<name>")`` too, an ``ImportError``."""

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class MissingExtraError(KayGraphError, ImportError):
    """An optional dependency is missing; the message says which ``pip install kaygraph[extra]`` fixes it."""

    def __init__(self, message: str, *, extra: str | None = None, name: str | None = None) -> None:
        super().__init__(message, name=name)
        self.extra = extra


class ExtensionRequiredError(MissingExtraError, RuntimeError):
    """Raised by ``@require_extension`` when the extension is missing: an ``ImportError`` like every
    missing extra, and a ``RuntimeError`` as the spec's decorator raised."""


class PluginError(KayGraphError):
    """A plugin is unknown, or failed to load or initialize."""

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin


class UnknownPluginError(PluginError, LookupError, ValueError):
    """No plugin has this name: a ``LookupError``, and a ``ValueError`` as the spec raised."""


# -- persistence -------------------------------------------------------------------------------


class PersistenceError(KayGraphError):
    """Base of every error of the persistence extension."""

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class RunNotFoundError(PersistenceError, KeyError):
    """No run with that id is stored."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class RunLockedError(PersistenceError):
    """Another process holds the lease on this run id; two writers never interleave a history."""


class CheckpointCorruptError(PersistenceError):
    """A stored checkpoint cannot be read (truncated, tampered, or an unknown schema version)."""


class SerializationError(PersistenceError, TypeError):
    """A value in the shared store cannot be encoded; names its key path and type."""

    def __init__(
        self, message: str, *, run_id: str | None = None, key_path: str | None = None
    ) -> None:
        super().__init__(message, run_id=run_id)
        self.key_path = key_path


class ResumeError(PersistenceError):
    """A run cannot be resumed: it already finished, or the graph no longer has its next node."""


# -- observability -----------------------------------------------------------------------------


class ObservabilityError(KayGraphError):
    """Tracing or metrics could not be set up (e.g. the metrics port is already in use)."""


__all__ = [
    "CheckpointCorruptError",
    "ConfigurationError",
    "ExtensionError",
    "ExtensionRequiredError",
    "GraphDefinitionError",
    "GraphExecutionError",
    "GraphReferenceError",
    "InvalidActionError",
    "KayGraphError",
    "ListenerError",
    "MissingExtraError",
    "NodeExecutionError",
    "ObservabilityError",
    "PersistenceError",
    "PluginError",
    "ResumeError",
    "RunCancelled",
    "RunLockedError",
    "RunNotFoundError",
    "SerializationError",
    "UnknownExtensionError",
    "UnknownPluginError",
    "ValidationError",
]
