"""load_graph: build a graph from a ``"package.module:attr"`` reference, as workers, the scheduler,
the dashboard and ``kaygraph runs resume`` do."""

from __future__ import annotations

from .exceptions import GraphReferenceError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from .graph import Graph


def load_graph(ref: str) -> Graph:
    """The graph that ``ref`` (``"package.module:attr"``, ``attr`` may be dotted) names.

    ``attr`` is a Graph, or a callable taking no arguments that returns one (a factory, called
    on every load so each caller gets its own graph). The graph remembers ``ref`` as
    ``graph.graph_ref``. A bad reference raises :class:`GraphReferenceError` naming the module or
    attribute and what was found.
    """
    from .graph import Graph

    if not isinstance(ref, str) or ref.count(":") != 1:
        raise GraphReferenceError(
            f"graph reference {ref!r} is not of the form 'package.module:attr' "
            "(e.g. 'myapp.flows:build_graph')",
            ref=ref if isinstance(ref, str) else None,
        )
    module_name, _, attr_path = ref.partition(":")
    if not module_name or not attr_path or not all(part.isidentifier() for part in attr_path.split(".")):
        raise GraphReferenceError(
            f"graph reference {ref!r} is not of the form 'package.module:attr' "
            "(e.g. 'myapp.flows:build_graph')",
            ref=ref,
        )
    import importlib
    import sys

    # Loaded already (a scheduler loads its graphs on every fire): skip importlib's machinery,
    # unless the module is still being imported by another thread.
    module = sys.modules.get(module_name)
    try:
        if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name != exc.name and not module_name.startswith(exc.name + "."):
            raise  # the module exists but imports something missing: that error is the real one
        raise GraphReferenceError(
            f"graph reference {ref!r}: no module named {module_name!r} (is its package installed, "
            "or its directory on sys.path / PYTHONPATH?)",
            ref=ref,
        ) from exc
    target: object = module
    walked = module_name
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise GraphReferenceError(
                f"graph reference {ref!r}: {walked!r} has no attribute {part!r}",
                ref=ref,
            ) from None
        walked = f"{walked}.{part}" if walked != module_name else f"{module_name}:{part}"
    graph = target
    if not isinstance(graph, Graph):
        if not callable(graph):
            raise GraphReferenceError(
                f"graph reference {ref!r} names {_describe(graph)}, not a Graph or a "
                "zero-argument function returning one",
                ref=ref,
            )
        try:
            graph = graph()
        except TypeError as exc:
            import inspect

            try:
                inspect.signature(graph).bind()
            except TypeError:
                raise GraphReferenceError(
                    f"graph reference {ref!r} names {_describe(target)}, which cannot be called "
                    f"without arguments ({exc}); point it at a Graph or a zero-argument factory",
                    ref=ref,
                ) from exc
            except ValueError:
                pass
            raise
        if not isinstance(graph, Graph):
            raise GraphReferenceError(
                f"graph reference {ref!r}: factory {_describe(target)} returned "
                f"{_describe(graph)}, not a Graph",
                ref=ref,
            )
    graph.graph_ref = ref
    return graph


def _describe(value: object) -> str:
    if isinstance(value, type):
        return f"class {value.__qualname__}"
    name = getattr(value, "__qualname__", None)
    if name is not None and callable(value):
        return f"function {name}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
