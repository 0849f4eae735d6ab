"""ValidatedNode: checks what goes into ``exec`` and what comes out of it."""

from __future__ import annotations

from .exceptions import ValidationError
from .node import Node

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (keeps import fast)

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class ValidatedNode(Node):
    """A Node with ``validate_input`` (on ``prep``'s result) and ``validate_output`` (on ``exec``'s).

    Each validator returns the value to use (possibly cleaned) or raises :class:`ValidationError`;
    the error is completed with the node id and the stage. Input is checked once, before the
    retries; output after ``exec`` (or its fallback) succeeded.
    """

    def validate_input(self, prep_res: Any) -> Any:
        """Return ``prep_res`` (or a cleaned version), or raise ValidationError."""
        return prep_res

    def validate_output(self, exec_res: Any) -> Any:
        """Return ``exec_res`` (or a cleaned version), or raise ValidationError."""
        return exec_res

    def _exec(self, prep_res: Any) -> Any:
        checked = self._validated("input", self.validate_input, prep_res)
        return self._validated("output", self.validate_output, super()._exec(checked))

    def _validated(self, stage: str, validator: Callable[[Any], Any], value: Any) -> Any:
        try:
            return validator(value)
        except ValidationError as exc:
            if exc.node_id is None:
                exc.node_id = self.node_id
            if exc.stage is None:
                exc.stage = stage
            raise
