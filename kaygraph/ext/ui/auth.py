"""Who may use the dashboard: tokens and roles, same-origin writes, loopback-only without a token.

Rules, in order:

* A token is sent as ``Authorization: Bearer <token>`` (or ``X-KayGraph-Token``), never in a
  cookie, so another site cannot make the browser send it. Tokens are compared in constant time.
* With ``token`` (role ``admin``) or ``read_token`` (role ``read``: view only) configured, every API
  call needs one of them. Without any token, only clients on the loopback interface are served,
  and the ``Host`` header must name a loopback address (so a DNS-rebinding page cannot reach it);
  ``insecure_no_auth=True`` lifts both, for a trusted network only.
* State-changing calls (start, cancel, resume, fork, schedule changes) need the ``admin`` role, a
  JSON body type, and no foreign ``Origin`` / cross-site ``Sec-Fetch-Site``: a page on another site
  cannot trigger them even where no token is needed.
"""

from __future__ import annotations

import dataclasses
import hmac
from typing import Any

from .base import is_loopback
from .errors import ApiError

ROLES = ("read", "admin")
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclasses.dataclass(frozen=True)
class AuthPolicy:
    """The access rules of one dashboard (see the module docstring)."""

    token: str | None = None
    read_token: str | None = None
    insecure_no_auth: bool = False
    #: Extra origins (``https://tools.example.com``) allowed to make state-changing calls.
    allowed_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("token", "read_token"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or len(value) < 8):
                from .errors import UIError

                raise UIError(
                    f"ui.{name} must be a string of at least 8 characters (got {len(str(value))}); "
                    "generate one with: python -c 'import secrets; print(secrets.token_urlsafe())'"
                )
        if self.token is not None and self.token == self.read_token:
            from .errors import UIError

            raise UIError("ui.token and ui.read_token must differ: the read-only token would grant admin")

    @property
    def tokens_required(self) -> bool:
        return self.token is not None or self.read_token is not None

    def role(self, headers: Any, client_host: str | None) -> str:
        """The role of a request (``admin`` or ``read``); ``ApiError`` 401/403 when it has none."""
        if not self.tokens_required:
            if self.insecure_no_auth:
                return "admin"
            if not is_loopback(client_host):
                raise ApiError(
                    401,
                    f"this dashboard has no token, so it serves only this machine (request from "
                    f"{client_host!r}); set ui.token / KAYGRAPH_UI_TOKEN to allow other machines",
                    culprit="client",
                )
            host = _host_name(headers.get("host") or "")
            if host and not is_loopback(host):
                raise ApiError(
                    403,
                    f"Host {headers.get('host')!r} is not a loopback name; open the dashboard at "
                    "http://127.0.0.1:<port> (or set ui.token to serve other names)",
                    culprit="host",
                )
            return "admin"
        presented = _presented_token(headers)
        if presented is None:
            raise ApiError(
                401,
                "this dashboard needs a token: send 'Authorization: Bearer <token>' "
                "(ui.token or ui.read_token)",
                culprit="authorization",
            )
        # Both comparisons always run, each in constant time, so timing tells nothing about either.
        is_admin = self.token is not None and hmac.compare_digest(presented.encode(), self.token.encode())
        is_reader = self.read_token is not None and hmac.compare_digest(
            presented.encode(), self.read_token.encode()
        )
        if is_admin:
            return "admin"
        if is_reader:
            return "read"
        raise ApiError(
            401,
            "the token was refused: it matches neither ui.token nor ui.read_token",
            culprit="authorization",
        )

    def check_write(self, method: str, headers: Any, role: str) -> None:
        """Refuse a state-changing call from a read-only token or from another site."""
        if method not in _WRITE_METHODS:
            return
        if role != "admin":
            raise ApiError(
                403,
                "this token is read-only (ui.read_token): it can view runs but not change them",
                culprit="role",
            )
        origin = headers.get("origin")
        if origin and origin != "null" and not self._same_origin(origin, headers):
            raise ApiError(
                403,
                f"cross-site request refused: Origin {origin!r} is not this dashboard; add it to "
                "ui.allowed_origins if it is yours",
                culprit="origin",
            )
        if origin == "null" or headers.get("sec-fetch-site") == "cross-site":
            raise ApiError(403, "cross-site request refused (Sec-Fetch-Site: cross-site)", culprit="origin")

    def _same_origin(self, origin: str, headers: Any) -> bool:
        if origin in self.allowed_origins:
            return True
        host = headers.get("host")
        if not host:
            return False
        forwarded = headers.get("x-forwarded-proto")
        schemes = [forwarded] if forwarded else ["http", "https"]
        return any(hmac.compare_digest(origin, f"{scheme}://{host}") for scheme in schemes)


def _host_name(host_header: str) -> str:
    """The name part of a ``Host`` header: ``127.0.0.1:8080`` -> ``127.0.0.1``, ``[::1]:80`` -> ``::1``."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0]
    return host_header.rpartition(":")[0] if ":" in host_header else host_header


def _presented_token(headers: Any) -> str | None:
    value = headers.get("authorization")
    if value:
        scheme, _, credentials = value.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
        return None
    token = headers.get("x-kaygraph-token")
    return token.strip() if token else None


__all__ = ["ROLES", "AuthPolicy"]
