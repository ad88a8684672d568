"""Browser protections on every response, and the client address behind exactly the
configured number of proxies."""

import pytest

from server import create_app

PAGES = ["/", "/healthz", "/api/v1/villages", "/app/", "/app/js/app.js", "/login", "/no-such"]


@pytest.mark.parametrize("path", PAGES)
def test_every_response_carries_the_browser_protections(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    if "default-src 'none'" not in csp:  # a route may send a stricter policy of its own
        assert "default-src 'self'" in csp
        assert "object-src 'none'" in csp
        assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers  # plain http, no HSTS


def test_each_response_gets_its_own_script_nonce(client):
    first = client.get("/").headers["Content-Security-Policy"]
    second = client.get("/").headers["Content-Security-Policy"]
    assert "'nonce-" in first and first != second


def test_hsts_is_sent_over_https_when_configured(tmp_path):
    app = create_app({"INSTANCE_PATH": str(tmp_path / "i"), "HSTS_SECONDS": 31536000})
    client = app.test_client()
    assert (
        client.get("/healthz", base_url="https://sp.example.cn").headers[
            "Strict-Transport-Security"
        ]
        == "max-age=31536000"
    )
    assert "Strict-Transport-Security" not in client.get("/healthz").headers


def watch_addresses(app) -> list[str]:
    """The client address each request is seen from (as the rate limits see it)."""
    seen: list[str] = []

    @app.before_request
    def remember():
        from flask import request

        seen.append(request.remote_addr)

    return seen


def whoami(app, seen: list[str], forwarded: str | None, peer: str = "127.0.0.1") -> str:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    app.test_client().get("/healthz", headers=headers, environ_base={"REMOTE_ADDR": peer})
    return seen[-1]


def test_without_a_proxy_a_forwarded_header_is_ignored(tmp_path):
    app = create_app({"INSTANCE_PATH": str(tmp_path / "i")})
    seen = watch_addresses(app)
    assert whoami(app, seen, "1.2.3.4", peer="198.51.100.1") == "198.51.100.1"


def test_behind_one_proxy_the_last_forwarded_entry_is_the_client(tmp_path):
    app = create_app({"INSTANCE_PATH": str(tmp_path / "i"), "PROXY_HOPS": 1})
    # a client who sends its own X-Forwarded-For cannot choose its address: nginx appends
    # the real one, and only that last entry is trusted
    seen = watch_addresses(app)
    assert whoami(app, seen, "6.6.6.6, 203.0.113.5") == "203.0.113.5"
    assert whoami(app, seen, "203.0.113.9") == "203.0.113.9"
