"""PersistentGraph: KayGraph 0.3's checkpoint-to-JSON-files graph, kept so 0.3 programs run unchanged.

Before each top-level node runs, the shared store is written to
``<checkpoint_dir>/checkpoint_NNNNNN.json`` and ``latest.json`` points at it (0.3's file format,
so checkpoints written by 0.3 are still read). ``resume_and_run()`` restarts a crashed run at the
node of the latest (or a given) checkpoint.

For new code prefer :mod:`kaygraph.ext.persistence` (``pip install 'kaygraph[persistence]'``):
resumable runs on SQLite, Redis or PostgreSQL, with run ids, history and leases. This module
stays on plain JSON files on purpose: it needs no extra, and 0.3's API is about files
(``checkpoint_dir``, checkpoint paths, ``list_checkpoints()``).

    >>> import tempfile
    >>> from kaygraph import Node
    >>> from kaygraph.persistence import PersistentGraph
    >>> class Inc(Node):
    ...     def post(self, shared, prep_res, exec_res):
    ...         shared["n"] += 1
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     graph = PersistentGraph(Inc(), checkpoint_dir=folder)
    ...     result = graph.run({"n": 0})
    ...     [c["node_id"] for c in graph.list_checkpoints()], result
    (['Inc'], {'n': 1})
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from kaygraph.core import BaseNode, Graph, ResumePoint
from kaygraph.core.exceptions import CheckpointCorruptError, PersistenceError

_log = logging.getLogger(__name__)

LATEST = "latest.json"
_PATTERN = "checkpoint_*.json"


class CheckpointDirError(PersistenceError, OSError):
    """The checkpoint folder cannot be created (an ``OSError`` as in 0.3, with a message naming it)."""


class PersistentGraph(Graph):
    """A :class:`~kaygraph.Graph` that checkpoints the shared store before every node it runs.

    ``checkpoint_dir=None`` disables checkpointing (then it is a plain graph).
    ``run(shared)`` returns the shared store, as in 0.3 (a plain graph returns the last action).
    The store must be JSON-serialisable, apart from ``Path``, ``set`` and ``tuple`` values, and
    objects (saved as their ``__dict__``, restored as a dict); other values are saved as ``str()``.
    Checkpoints are written atomically (a crash never leaves half a file) and numbered after the
    ones already in the folder, so a restarted process adds to the history instead of
    overwriting it. Checkpoints are taken in top-level runs only: nested in another graph, a
    PersistentGraph runs as a plain graph.
    """

    def __init__(
        self,
        start_node: BaseNode | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(start_node, **kwargs)
        self._checkpoint_lock = threading.Lock()
        self.checkpoint_dir: Path | None = None
        self._checkpoint_enabled = False
        self._checkpoint_counter = 0
        if checkpoint_dir is not None:
            self.enable_checkpointing(checkpoint_dir)

    # -- switching --------------------------------------------------------------------------------

    def enable_checkpointing(self, checkpoint_dir: str | os.PathLike[str]) -> None:
        """Checkpoint into ``checkpoint_dir`` (created if needed) from now on."""
        folder = Path(checkpoint_dir)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CheckpointDirError(
                f"PersistentGraph cannot use checkpoint_dir {str(folder)!r}: {exc.strerror or exc}. "
                "Pass a folder this process can create and write."
            ) from exc
        self.checkpoint_dir = folder
        self._checkpoint_counter = _next_counter(folder)
        self._checkpoint_enabled = True
        _log.info("checkpointing enabled at %s", folder)

    def disable_checkpointing(self) -> None:
        """Stop writing checkpoints (the folder and its files stay)."""
        self._checkpoint_enabled = False

    # -- checkpoints ------------------------------------------------------------------------------

    def save_checkpoint(self, shared: dict[str, Any], node_id: str) -> Path | None:
        """Write ``shared`` as the checkpoint before ``node_id``; returns its path (None when disabled)."""
        folder = self.checkpoint_dir
        if not self._checkpoint_enabled or folder is None:
            return None
        with self._checkpoint_lock:
            counter = self._checkpoint_counter
            self._checkpoint_counter += 1
            path = folder / f"checkpoint_{counter:06d}.json"
            stamp = time.time()
            record = {
                "timestamp": stamp,
                "counter": counter,
                "node_id": node_id,
                "shared": encode(shared),
            }
            _write_atomically(path, json.dumps(record, indent=2, default=str))
            _write_atomically(
                folder / LATEST,
                json.dumps({"latest": str(path), "timestamp": stamp, "node_id": node_id}, indent=2),
            )
        _log.debug("checkpoint %d before node %r: %s", counter, node_id, path)
        return path

    def resume_from_checkpoint(
        self, checkpoint_path: str | os.PathLike[str] | None = None
    ) -> tuple[dict[str, Any], str]:
        """``(shared, node_id)`` of a checkpoint: ``checkpoint_path``, or the latest one.

        Raises ``FileNotFoundError`` for a missing file, ``ValueError`` when no folder is set or
        it holds no checkpoint, :class:`~kaygraph.core.exceptions.CheckpointCorruptError` for a
        file that is not a checkpoint.
        """
        if checkpoint_path is not None:
            path = Path(checkpoint_path)
            if not path.is_file():
                raise FileNotFoundError(f"Checkpoint not found: {path}")
        else:
            path = self._latest_path()
        record = _read_json(path)
        try:
            shared, node_id = decode(record["shared"]), record["node_id"]
        except (KeyError, TypeError):
            raise CheckpointCorruptError(
                f"{path} is not a PersistentGraph checkpoint: it needs the keys 'node_id' and 'shared'"
            ) from None
        _log.info("resuming from checkpoint %s at node %r", path, node_id)
        return shared, node_id

    def _latest_path(self) -> Path:
        if self.checkpoint_dir is None:
            raise ValueError(
                "No checkpoint directory configured: pass PersistentGraph(..., checkpoint_dir=...) or "
                "call enable_checkpointing(folder), or give resume_from_checkpoint() a checkpoint path"
            )
        latest = self.checkpoint_dir / LATEST
        if not latest.is_file():
            raise ValueError(f"No checkpoints found in {self.checkpoint_dir} (no {LATEST})")
        pointer = _read_json(latest).get("latest")
        if not isinstance(pointer, str):
            raise CheckpointCorruptError(
                f"{latest} does not name a checkpoint file ('latest' is {pointer!r})"
            )
        path = Path(pointer)
        if not path.is_absolute() and not path.is_file():
            path = self.checkpoint_dir / path.name  # the folder was moved since
        if not path.is_file():
            raise FileNotFoundError(f"Checkpoint not found: {path} (named by {latest})")
        return path

    def list_checkpoints(self) -> list[dict[str, Any]]:
        """``file``, ``counter``, ``node_id`` and ``timestamp`` of every readable checkpoint, oldest first."""
        folder = self.checkpoint_dir
        if folder is None or not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.glob(_PATTERN)):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                found.append(
                    {
                        "file": str(path),
                        "counter": record["counter"],
                        "node_id": record["node_id"],
                        "timestamp": record["timestamp"],
                    }
                )
            except (OSError, ValueError, KeyError, TypeError):
                _log.warning("skipping unreadable checkpoint %s", path)
        return found

    def clear_checkpoints(self) -> None:
        """Delete every checkpoint file and ``latest.json`` of the folder."""
        folder = self.checkpoint_dir
        if folder is None or not folder.is_dir():
            return
        with self._checkpoint_lock:
            for path in [*folder.glob(_PATTERN), folder / LATEST]:
                path.unlink(missing_ok=True)
            self._checkpoint_counter = 0

    # -- running ----------------------------------------------------------------------------------

    def run(self, shared: Any, **kwargs: Any) -> Any:
        """Run the graph, checkpointing before each node; returns ``shared`` (0.3's contract)."""
        super().run(shared, **self._with_checkpoints(kwargs))
        return shared

    def resume_and_run(
        self, checkpoint_path: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Load a checkpoint (default: the latest) and run on from its node; returns the store."""
        shared, node_id = self.resume_from_checkpoint(checkpoint_path)
        if self._find_node_by_id(node_id) is None:
            raise ValueError(
                f"Cannot find node {node_id!r} to resume from: this graph's nodes are "
                f"{list(self.nodes())}. Give nodes explicit node_id=... so their ids stay the same "
                "when the graph changes."
            )
        super().run(shared, resume=ResumePoint((node_id,)), **self._with_checkpoints(kwargs))
        return shared

    def _find_node_by_id(self, node_id: str) -> BaseNode | None:
        """The node of this graph's top level with id ``node_id``, or None."""
        return self.nodes().get(node_id)

    def _with_checkpoints(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if not self._checkpoint_enabled:
            return kwargs
        listeners = [*(kwargs.pop("listeners", None) or ()), _Checkpointer(self)]
        return {**kwargs, "listeners": listeners}


class _Checkpointer:
    """The listener that writes a checkpoint before each top-level node of a PersistentGraph."""

    def __init__(self, graph: PersistentGraph) -> None:
        self.graph = graph

    def on_node_start(self, *, path: tuple[Any, ...], node_id: str, shared: Any, **kwargs: Any) -> None:
        if len(path) == 1:
            self.graph.save_checkpoint(shared, node_id)


# -- the JSON format (0.3's: {"__type__": "Path" | "set" | "object", ...}) ---------------------------


def encode(value: Any) -> Any:
    """``value`` as JSON-ready data, in 0.3's format; unknown leaf values are left to ``str()``."""
    if isinstance(value, dict):
        return {key: encode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(item) for item in value]
    if isinstance(value, Path):
        return {"__type__": "Path", "value": str(value)}
    if isinstance(value, (set, frozenset)):
        return {"__type__": "set", "value": [encode(item) for item in value]}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    state = getattr(value, "__dict__", None)
    if isinstance(state, dict):
        return {"__type__": "object", "__class__": type(value).__name__, "__dict__": encode(state)}
    return value


def decode(value: Any) -> Any:
    """The inverse of :func:`encode`: Paths and sets come back; objects come back as dicts."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("__type__")
    if kind == "Path":
        return Path(value["value"])
    if kind == "set":
        return {decode(item) for item in value["value"]}
    if kind == "object":
        return decode(value.get("__dict__", {}))
    return {key: decode(item) for key, item in value.items()}


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointCorruptError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise CheckpointCorruptError(f"{path}: a checkpoint is a JSON object, found {type(data).__name__}")
    return data


def _next_counter(folder: Path) -> int:
    numbers = []
    for path in folder.glob(_PATTERN):
        digits = path.stem.removeprefix("checkpoint_")
        if digits.isdigit():
            numbers.append(int(digits))
    return max(numbers, default=-1) + 1


__all__ = ["PersistentGraph", "decode", "encode"]
