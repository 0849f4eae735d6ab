"""kaygraph.utils.urls: the one password redaction and option stripping every extension uses."""

from __future__ import annotations

import pytest

from kaygraph.utils.urls import redact_url, without_options


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://kay:s3cret@db.internal:5432/app", "postgresql://kay:***@db.internal:5432/app"),
        ("redis://:s3cret@127.0.0.1:6379/0?prefix=p:", "redis://:***@127.0.0.1:6379/0?prefix=p:"),
        ("postgresql://kay:s3cret@[::1]:5432/app", "postgresql://kay:***@[::1]:5432/app"),  # IPv6 kept
        ("postgresql://k%40y:p%3Ass@host/app", "postgresql://k%40y:***@host/app"),  # user as written
        ("tcp://user:secret@host:8786", "tcp://user:***@host:8786"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),  # nothing to hide
        ("sqlite:///runs.db", "sqlite:///runs.db"),
        ("redis://u:pw@[::1", "<unparsable URL>"),  # never echoed back with its password
    ],
)
def test_a_password_is_never_shown_and_the_rest_is_kept_as_written(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "s3cret" not in redact_url(url) and "secret" not in redact_url(url)


def test_only_the_consumed_options_are_dropped() -> None:
    url = "postgresql://h/db?schema=kg&application_name=a%20b&sslmode=require"
    assert without_options(url, ("schema",)) == "postgresql://h/db?application_name=a%20b&sslmode=require"
    assert without_options("redis://h:6379/2?prefix=p:", ("prefix",)) == "redis://h:6379/2"
