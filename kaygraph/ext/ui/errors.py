"""Errors of the UI extension: every failure of an API call becomes one JSON answer naming the culprit."""

from __future__ import annotations

from typing import Any

from kaygraph.core.exceptions import KayGraphError


class UIError(KayGraphError):
    """Base class of the dashboard's own errors (bad settings, a graph that cannot be served...)."""


class ApiError(UIError):
    """A request the API refuses: HTTP ``status``, a one-sentence ``message`` and the ``culprit``.

    ``culprit`` names what was wrong (``"cursor"``, ``"run_id"``, ``"patch.docs"``...), so a client
    can point at the field; the JSON answer is ``{"error": {"status", "code", "message", "culprit"}}``.
    """

    def __init__(
        self, status: int, message: str, *, culprit: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.culprit = culprit
        self.code = code or _CODES.get(status, "error")

    def payload(self) -> dict[str, Any]:
        """The JSON body of the error answer."""
        return {
            "error": {
                "status": self.status,
                "code": self.code,
                "message": self.message,
                "culprit": self.culprit,
            }
        }


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    503: "unavailable",
}

__all__ = ["ApiError", "UIError"]
