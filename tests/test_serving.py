"""`sipang serve` (what `make run` starts) serves with gunicorn, as a county's server does, and a
large body it refuses without reading ends its connection at once instead of holding a worker
while the rest of the body trickles in."""

import json
import shutil
import socket
import urllib.request

import pytest

from tests.conftest import bearer
from tests.server_process import ServerProcess

PUSH_BYTES = 200 * 1024  # a 2G phone's big push batch
CHUNK_BYTES = 128 * 1024  # one photo chunk


@pytest.fixture(scope="module")
def server(tmp_path_factory, seeded):
    folder, world = seeded
    instance = tmp_path_factory.mktemp("serving") / "instance"
    shutil.copytree(folder, instance)
    with ServerProcess(instance) as process:
        process.world = world
        yield process


def post(server, path: str, body: dict, token: str | None = None) -> dict:
    request = urllib.request.Request(  # noqa: S310 - the test server's http URL
        f"{server.url}{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **(bearer(token) if token else {})},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def measurer_token(server) -> str:
    world = server.world
    code = post(
        server,
        "/api/v1/devices/enrolment-codes",
        {"measurer_id": world.measurer_id},
        world.tokens["admin"],
    )["code"]
    return post(server, "/api/v1/devices/enrol", {"code": code, "label": "serving test"})["token"]


def refused_unread(server, head: str, declared: int) -> tuple[str, bytes]:
    """Send a request declaring `declared` body bytes but only the first 8 KB of them, then read
    until the server closes. Returns the response head and what followed it. A server that
    keeps the connection waits for the rest: the read then times out and the test fails."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    try:
        request = head.replace("\n", "\r\n") + f"Content-Length: {declared}\r\n\r\n"
        sock.sendall(request.encode() + b"{" + b" " * (8 * 1024 - 1))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    finally:
        sock.close()
    response_head, _, body = received.partition(b"\r\n\r\n")
    return response_head.decode("latin-1"), body


def test_serve_answers_with_the_production_server(server):
    with urllib.request.urlopen(f"{server.url}/healthz", timeout=30) as response:  # noqa: S310
        assert response.status == 200
        assert response.headers["Server"].startswith("gunicorn")


def test_a_push_refused_unread_closes_its_connection(server):
    head, body = refused_unread(
        server,
        "POST /api/v1/sync/push HTTP/1.1\nHost: sipang\nContent-Type: application/json\n"
        "Authorization: Bearer not-a-token\n",
        PUSH_BYTES,
    )

    assert head.startswith("HTTP/1.1 401"), head
    assert "connection: close" in head.lower(), head
    assert json.loads(body)["error"]["status"] == 401


def test_a_photo_chunk_refused_unread_closes_its_connection(server):
    token = measurer_token(server)
    head, body = refused_unread(
        server,
        f"PUT /api/v1/blobs/{'cd' * 32} HTTP/1.1\nHost: sipang\n"
        f"Content-Type: application/octet-stream\nAuthorization: Bearer {token}\n"
        f"Upload-Offset: 4096\nUpload-Length: {4 * CHUNK_BYTES}\n",
        CHUNK_BYTES,
    )

    assert head.startswith("HTTP/1.1 409"), head
    assert "connection: close" in head.lower(), head
    assert json.loads(body)["error"]["details"] == {"offset": 0}


def test_a_body_read_whole_keeps_its_connection_for_the_next_request(server):
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    reader = connection.makefile("rb")
    try:
        body = b'{"username": "admin", "password": "not the password"}'
        for _ in range(2):  # two requests on one connection: the first left it open
            connection.sendall(
                b"POST /api/v1/auth/tokens HTTP/1.1\r\nHost: sipang\r\n"
                b"Content-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            status = reader.readline()
            headers = {}
            while (line := reader.readline()) != b"\r\n":
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            reader.read(int(headers["content-length"]))
            assert status.startswith(b"HTTP/1.1 401"), status
            assert headers["connection"] == "keep-alive"
    finally:
        reader.close()
        connection.close()
