"""Store and cluster URLs in messages and driver calls, written once for every extension.

``redact_url`` hides a password wherever a URL is shown (errors, ``kaygraph info``, logs);
``without_options`` drops the query options KayGraph itself consumes (``prefix``, ``schema``)
before the URL goes to a driver, keeping every other option exactly as written.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (user, host and port kept as written)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return "<unparsable URL>"
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def without_options(url: str, consumed: tuple[str, ...]) -> str:
    """``url`` without the query options KayGraph consumed; every other option (``sslmode``,
    ``db``, ``application_name``, ...) is passed on to the driver unchanged."""
    parts = urlsplit(url)
    # Keep the other options' text exactly as written: re-encoding would turn %20 into "+",
    # which libpq reads literally.
    kept = [
        option
        for option in parts.query.split("&")
        if option and unquote(option.split("=", 1)[0]) not in consumed
    ]
    return urlunsplit(parts._replace(query="&".join(kept)))


__all__ = ["redact_url", "without_options"]
