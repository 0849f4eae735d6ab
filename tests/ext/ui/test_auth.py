"""Access rules: tokens and the read-only role, same-origin writes, loopback-only without a token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from ui_helpers import error_of, run_pipeline

from kaygraph.ext.ui import ApiError, AuthPolicy, UIError

ADMIN, READER = "admin-token-1234", "reader-token-5678"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_tokens_and_the_read_only_role(sqlite_url: str, serve: Any) -> None:
    run_pipeline(sqlite_url, "r1")
    server = serve(sqlite_url, token=ADMIN, read_token=READER)
    with httpx.Client(base_url=server.url) as client:
        # No token, a wrong one, a malformed header: 401 naming the header, for pages and streams alike.
        for headers in (
            {},
            bearer("wrong-token-0000"),
            {"Authorization": "Basic " + ADMIN},
            bearer(ADMIN + "x"),
        ):
            for path in ("/api/runs", "/api/runs/r1", "/api/runs/r1/events", "/api/session"):
                response = client.get(path, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert error_of(response)["culprit"] == "authorization"
                assert response.headers["www-authenticate"] == "Bearer"
        refused = client.post("/api/runs", json={"graph": "pipeline"}, headers=bearer("nope-nope-nope"))
        assert refused.status_code == 401
        # Cookies are not a way in: the token only counts in a header.
        assert (
            client.get("/api/runs", headers={"Cookie": f"token={ADMIN}; Authorization={ADMIN}"}).status_code
            == 401
        )

        # The read-only token reads everything and changes nothing.
        assert client.get("/api/runs", headers=bearer(READER)).status_code == 200
        assert client.get("/api/session", headers=bearer(READER)).json()["role"] == "read"
        assert client.get("/api/runs/r1/steps/1/state", headers=bearer(READER)).status_code == 200
        for path, body in (
            ("/api/runs", {"graph": "pipeline"}),
            ("/api/runs/r1/fork", {"step": 1}),
            ("/api/runs/r1/cancel", {}),
            ("/api/runs/r1/resume", None),
        ):
            response = client.post(path, json=body, headers=bearer(READER))
            assert response.status_code == 403, path
            assert error_of(response)["culprit"] == "role" and "read-only" in error_of(response)["message"]

        # The admin token may start runs; X-KayGraph-Token works too.
        assert client.get("/api/session", headers=bearer(ADMIN)).json()["role"] == "admin"
        started = client.post(
            "/api/runs", json={"graph": "pipeline", "shared": {"loops": 1}}, headers=bearer(ADMIN)
        )
        assert started.status_code == 201, started.text
        assert client.get("/api/runs", headers={"X-KayGraph-Token": READER}).status_code == 200
        # The pages and the health check are public: the login form is on the page.
        assert client.get("/").status_code == 200 and client.get("/healthz").status_code == 200


def test_state_changing_calls_refuse_other_sites(sqlite_url: str, serve: Any) -> None:
    server = serve(sqlite_url)  # loopback, no token: writes are allowed, but only same-origin
    with httpx.Client(base_url=server.url) as client:
        start = {"graph": "pipeline", "shared": {"loops": 1}}
        evil = client.post("/api/runs", json=start, headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403 and error_of(evil)["culprit"] == "origin"
        assert "https://evil.example" in error_of(evil)["message"]
        cross = client.post("/api/runs", json=start, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403
        opaque = client.post("/api/runs", json=start, headers={"Origin": "null"})
        assert opaque.status_code == 403
        # A form post (text/plain needs no CORS preflight) is refused before anything runs.
        form = client.post(
            "/api/runs", content=b'{"graph": "pipeline"}', headers={"Content-Type": "text/plain"}
        )
        assert form.status_code == 415
        # The dashboard's own page (same origin) and programs without Origin may write.
        same = client.post("/api/runs", json=start, headers={"Origin": server.url})
        assert same.status_code == 201, same.text
        assert client.post("/api/runs", json=start).status_code == 201
        # Reading is not restricted by Origin (nothing changes).
        assert client.get("/api/runs", headers={"Origin": "https://evil.example"}).status_code == 200


def test_without_a_token_only_loopback_names_are_served(sqlite_url: str, serve: Any) -> None:
    server = serve(sqlite_url)
    with httpx.Client(base_url=server.url) as client:
        rebound = client.get("/api/runs", headers={"Host": "attacker.example:80"})
        assert rebound.status_code == 403 and error_of(rebound)["culprit"] == "host"
        assert client.get("/api/runs", headers={"Host": "localhost"}).status_code == 200
    allowed = serve(sqlite_url, allowed_origins=["https://tools.example"])
    with httpx.Client(base_url=allowed.url) as client:
        ok = client.post("/api/runs", json={"graph": "pipeline"}, headers={"Origin": "https://tools.example"})
        assert ok.status_code == 201


def test_policy_rules_for_remote_clients() -> None:
    # No token: a client that is not on this machine is refused, unless insecure_no_auth.
    with pytest.raises(ApiError) as refused:
        AuthPolicy().role({"host": "10.1.2.3:8080"}, "10.9.9.9")
    assert refused.value.status == 401 and "ui.token" in refused.value.message
    assert AuthPolicy(insecure_no_auth=True).role({"host": "10.1.2.3:8080"}, "10.9.9.9") == "admin"
    assert AuthPolicy().role({"host": "[::1]:8080"}, "::1") == "admin"
    # With a token the client's address does not matter, the token does.
    policy = AuthPolicy(token=ADMIN, read_token=READER)
    assert policy.role({"authorization": f"Bearer {READER}"}, "10.9.9.9") == "read"
    # Bad settings are refused when the app is made, not at the first request.
    with pytest.raises(UIError, match="at least 8 characters"):
        AuthPolicy(token="short")
    with pytest.raises(UIError, match="must differ"):
        AuthPolicy(token=ADMIN, read_token=ADMIN)


def test_token_comes_from_the_configuration(
    sqlite_url: str, serve: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAYGRAPH_UI_TOKEN", ADMIN)
    server = serve(sqlite_url)
    assert httpx.get(f"{server.url}/api/runs").status_code == 401
    assert httpx.get(f"{server.url}/api/runs", headers=bearer(ADMIN)).status_code == 200
