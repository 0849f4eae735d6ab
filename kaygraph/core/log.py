"""Step logs: ``node.logger`` and the records KayGraph 0.3 wrote for each step, built lazily.

``node.logger`` is ``logging.getLogger(<class name>)``, made on first use (``logging`` is not
imported by ``import kaygraph``). A step's INFO records (start, completion with time and action,
the graph's transitions) are considered once per run: if no logger could emit INFO, a step pays
nothing and no message is ever formatted. Failures (WARNING for a failed attempt, ERROR for a
failed node or an exhausted retry) are logged at 0.3's levels, on the error path only, and only
to handlers the application configured: unlike 0.3, a program that never set up logging gets
no stray lines from Python's last-resort stderr handler (the exception itself still propagates).
"""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from typing import Any

_INFO = 20
_CHECKED = 7  # a level no one uses: its entry in the root logger's cache marks our check valid
_info_possible = False


class LoggerAttribute:
    """``node.logger``: the logger named after the node's class, created on first access.

    Assigning ``self.logger = ...`` in a node replaces it for that node, as in 0.3.
    """

    def __get__(self, node: Any, owner: type) -> Any:
        import logging

        return logging.getLogger(owner.__name__)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name


def info_possible() -> bool:
    """Whether any logger could emit an INFO record now: checked once per run.

    The answer is cached until logging's configuration changes (``setLevel``, ``disable`` and
    ``dictConfig`` clear every logger's level cache, which drops our marker from the root's).
    """
    global _info_possible
    logging = sys.modules.get("logging")
    if logging is None:  # nobody imported logging, so nobody lowered a level below WARNING
        return False
    root = logging.root
    cache = getattr(root, "_cache", None)
    if cache is not None and _CHECKED in cache:
        return _info_possible
    manager = root.manager
    possible = manager.disable < _INFO and (
        root.level <= _INFO
        or any(
            isinstance(logger, logging.Logger) and logger.level != 0 and logger.level <= _INFO
            for logger in list(manager.loggerDict.values())
        )
    )
    _info_possible = possible
    root.isEnabledFor(_CHECKED)  # records the marker in root._cache
    return possible


def _logger(node: Any) -> Any:
    return node.logger


def _configured(logger: Any) -> bool:
    """Whether a handler would receive ``logger``'s records (not Python's last resort)."""
    return bool(logger.hasHandlers())


def step_started(graph: Any, node: Any, node_id: str) -> None:
    graph_logger = _logger(graph)
    if graph_logger.isEnabledFor(_INFO):
        graph_logger.info("Graph transition to node: %s (%s)", node_id, type(node).__name__)
    logger = _logger(node)
    if logger.isEnabledFor(_INFO):
        logger.info("Node %s: Starting execution with params: %s", node_id, node.params)


def step_finished(node: Any, node_id: str, started: float, action: Any) -> None:
    logger = _logger(node)
    if logger.isEnabledFor(_INFO):
        logger.info(
            "Node %s: Completed in %.3fs with action: '%s'", node_id, time.perf_counter() - started, action
        )


def level_finished(graph: Any, action: Any) -> None:
    logger = _logger(graph)
    if logger.isEnabledFor(_INFO):
        logger.info("Graph %s: Execution completed with final action: '%s'", graph.node_id, action)


def failed(node: Any, error: BaseException, node_id: str | None = None) -> None:
    """ERROR "Node X: Failed: ..." once per exception (the innermost node that saw it)."""
    if getattr(error, "_kaygraph_logged", False):
        return
    try:
        error._kaygraph_logged = True  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - exceptions with __slots__
        return
    logger = _logger(node)
    if _configured(logger):
        logger.error("Node %s: Failed: %s", node_id or node.node_id, error)


def suppressed(node: Any) -> None:
    logger = _logger(node)
    if logger.isEnabledFor(_INFO):
        logger.info("Node %s: Error suppressed by on_error hook", node.node_id)


def attempt_failed(node: Any, attempt: int, error: BaseException) -> None:
    logger = _logger(node)
    if not _configured(logger):
        return
    logger.warning("Node %s: Execution failed on attempt %d: %s", node.node_id, attempt + 1, error)
    if attempt == node.max_retries - 1 and node.max_retries > 1:
        logger.error("Node %s: Max retries reached. Calling fallback.", node.node_id)


def retrying(node: Any, attempt: int) -> None:
    logger = _logger(node)
    if logger.isEnabledFor(_INFO):
        if node.wait > 0:
            logger.info("Node %s: Waiting for %s seconds before next retry.", node.node_id, node.wait)
        logger.info(
            "Node %s: Retrying execution (attempt %d/%d)...", node.node_id, attempt + 2, node.max_retries
        )
