"""Behind the documented nginx (Debian's, started by the test with deploy/nginx.conf's
locations) and two gunicorn processes with deploy/gunicorn.conf.py sharing a Redis, as a county
runs them: each client keeps its own address, so one client's wrong passwords lock neither
another client nor the account, whichever process answers, and a forged X-Forwarded-For buys
no fresh allowance. The browser protections arrive through nginx. Public reads come from
nginx's one-second micro-cache; signed-in requests, private pages and cookies never do."""

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.site_processes import (
    free_ports,
    start_gunicorn,
    start_nginx,
    start_redis,
    stop,
    wait_for,
)

SIPANG = Path(sys.executable).parent / "sipang"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def site(tmp_path_factory, seeded):
    """nginx on a free port in front of two gunicorn processes sharing a redis-server, on a
    copy of the seeded instance with an admin `boss` whose password is PASSWORD."""
    import shutil

    tmp = tmp_path_factory.mktemp("proxy")
    folder, world = seeded
    instance = tmp / "instance"
    shutil.copytree(folder, instance)
    env = {**os.environ, "SIPANG_INSTANCE": str(instance)}
    subprocess.run(  # noqa: S603 - our own program
        [str(SIPANG), "users", "add", "boss", "--role", "admin", "--password-stdin"],
        input=PASSWORD + "\n",
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )
    redis_port, port, *app_ports = free_ports(4)
    redis = start_redis(tmp / "redis", redis_port)
    shared = f"redis://127.0.0.1:{redis_port}/0"
    apps = [
        start_gunicorn(
            instance,
            app_port,
            PROXY_HOPS="1",
            SOCKETIO_MESSAGE_QUEUE=shared,
            RATELIMIT_STORAGE_URI=shared,
        )
        for app_port in app_ports
    ]
    proxy = start_nginx(tmp, port, app_ports)
    try:
        for app_port, app in zip(app_ports, apps, strict=True):
            wait_for(app_port, app)
        wait_for(port, proxy)
        yield port, world
    finally:
        stop(proxy, *apps, redis)


def post_from(address: str, port: int, path: str, body: dict, forged: str | None = None):
    """POST through nginx from a loopback address of our choosing (another client)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(address, 0)
    )
    headers = {"Content-Type": "application/json"}
    if forged:
        headers["X-Forwarded-For"] = forged
    connection.request("POST", path, json.dumps(body), headers)
    response = connection.getresponse()
    return response.status, dict(response.headers), response.read()


def token_attempt(address: str, port: int, password: str, forged: str | None = None) -> int:
    body = {"username": "boss", "password": password}
    return post_from(address, port, "/api/v1/auth/tokens", body, forged)[0]


def test_one_clients_wrong_passwords_lock_neither_another_client_nor_the_account(site):
    site, _ = site
    attempts = [
        token_attempt("127.0.0.2", site, "wrong password!", forged=f"10.0.0.{n}") for n in range(10)
    ]
    assert attempts == [401] * 10
    # forged X-Forwarded-For headers bought no fresh allowance: nginx appends the real peer
    assert token_attempt("127.0.0.2", site, PASSWORD, forged="10.9.9.9") == 429
    # another client, the account's owner, signs in
    assert token_attempt("127.0.0.3", site, PASSWORD) == 201


def test_browser_protections_arrive_through_nginx(site):
    site, _ = site
    connection = http.client.HTTPConnection("127.0.0.1", site, timeout=10)
    connection.request("GET", "/")
    response = connection.getresponse()
    response.read()
    assert "frame-ancestors 'none'" in response.getheader("Content-Security-Policy")
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Strict-Transport-Security") == "max-age=31536000"


def get(port: int, path: str, **headers: str) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def twice(port: int, path: str, **headers: str) -> list[tuple[int, dict, bytes]]:
    """The same GET twice in a row, until the second falls in the first's cache second (a
    loaded machine may take longer between them; bounded, and nothing is timed)."""
    for _ in range(20):
        first, second = get(port, path, **headers), get(port, path, **headers)
        if second[1]["x-cache"] != "EXPIRED":
            break
    return [first, second]


@pytest.mark.parametrize("path", ["/v/{village}", "/api/v1/villages", "/api/v1/species"])
def test_a_public_read_is_made_once_for_readers_in_the_same_second(site, path):
    port, world = site
    path = path.format(village=world.village_a)
    (status, headers, body), (status2, headers2, body2) = twice(port, path)

    assert (status, status2) == (200, 200)
    assert headers2["x-cache"] == "HIT"
    assert body2 == body  # the very page made for the first reader, nonce and all
    assert headers2["content-security-policy"] == headers["content-security-policy"]


def test_a_cached_page_still_answers_its_etag_with_304(site):
    port, world = site
    _, headers, _ = get(port, f"/v/{world.village_a}")

    status, _, body = get(port, f"/v/{world.village_a}", **{"If-None-Match": headers["etag"]})

    assert status == 304 and body == b""


def test_a_request_with_a_cookie_or_a_token_is_never_served_from_the_cache(site):
    port, world = site
    twice(port, "/api/v1/villages")  # the anonymous copy is in the cache now

    cookie = twice(port, "/api/v1/villages", Cookie="session=a-signed-in-reader")
    token = twice(port, "/api/v1/villages", Authorization=f"Bearer {world.tokens['admin']}")

    assert [r[1]["x-cache"] for r in cookie + token] == ["BYPASS"] * 4


def test_a_response_setting_a_cookie_is_never_stored(site):
    port, _ = site
    responses = twice(port, "/login")

    assert [r[0] for r in responses] == [200, 200]
    assert all("set-cookie" in headers for _, headers, _ in responses)
    assert [r[1]["x-cache"] for r in responses] == ["MISS", "MISS"]
    assert responses[0][1]["set-cookie"] != responses[1][1]["set-cookie"]


def test_a_dashboard_keeps_its_socket_io_session_through_nginx(site):
    """Socket.IO's polling requests of one client reach the process holding its session
    (nginx hashes the client's address); the other process would refuse the unknown session."""
    import threading

    import socketio

    port, world = site
    welcomed, arrived = [], threading.Event()
    dashboard = socketio.Client()

    @dashboard.on("welcome", namespace="/live")
    def welcome(data):
        welcomed.append(data)
        arrived.set()

    dashboard.connect(
        f"http://127.0.0.1:{port}",
        namespaces=["/live"],
        auth={"token": world.tokens["admin"]},
        transports=["polling"],
        wait_timeout=30,
    )
    try:
        assert arrived.wait(timeout=30)  # the welcome comes on a later poll than the handshake
        dashboard.sleep(1)  # more polls on the same session
        assert dashboard.connected
    finally:
        dashboard.disconnect()
    assert welcomed[0]["room"] == "everywhere"
