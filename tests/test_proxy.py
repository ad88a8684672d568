"""The weak-network proxy in front of a real HTTP server on loopback."""

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sync.profiles import PROFILES, FaultSpec, Profile, default_faults
from sync.proxy import WeakNetworkProxy

ROOT = Path(__file__).resolve().parent.parent


class _Handler(BaseHTTPRequestHandler):
    """GET /size/N answers N bytes; POST /echo counts the request and echoes its body."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"x" * int(self.path.rsplit("/", 1)[1])
        self._answer(200, body)

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        if len(body) < length:  # the client went away mid-request
            return
        with self.server.lock:
            self.server.requests += 1
        self._answer(200, body)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests = 0
    httpd.lock = threading.Lock()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _target(server: ThreadingHTTPServer) -> tuple[str, int]:
    return ("127.0.0.1", server.server_address[1])


def _raw_request(proxy: WeakNetworkProxy, request: bytes) -> bytes:
    """Send request bytes and read everything until the proxy closes."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=20) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


def _post(body: bytes) -> bytes:
    head = f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def test_gprs_download_runs_near_the_50_kbps_cap(server):
    with WeakNetworkProxy(_target(server), profile="gprs", seed=1) as proxy:
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=20)
        sock.sendall(_get("/size/25000"))
        sock.recv(65536)  # the first piece: the clock starts when data flows
        started, received = time.monotonic(), 0
        while chunk := sock.recv(65536):
            received += len(chunk)
        elapsed = time.monotonic() - started
        sock.close()
    kbps = received * 8 / elapsed / 1000
    assert received > 24_000
    assert 35 < kbps < 60, kbps


def test_upload_is_capped_by_the_up_rate(server):
    profile = Profile("test", down_kbps=0, up_kbps=200)
    body = b"u" * 25_000
    with WeakNetworkProxy(_target(server), profile=profile) as proxy:
        started = time.monotonic()
        response = _raw_request(proxy, _post(body))
        elapsed = time.monotonic() - started
        proxy.wait_idle()
        sent = proxy.stats.bytes_up
    assert response.endswith(body)
    kbps = sent * 8 / elapsed / 1000
    assert 140 < kbps < 230, kbps


def test_latency_adds_the_one_way_delay_each_way(server):
    profile = Profile("slow", latency_ms=400)
    with WeakNetworkProxy(_target(server), profile=profile) as proxy:
        started = time.monotonic()
        response = _raw_request(proxy, _get("/size/10"))
        elapsed = time.monotonic() - started
    assert response.startswith(b"HTTP/1.1 200")
    assert elapsed >= 0.4  # 200 ms up, 200 ms down


@pytest.mark.parametrize("cut_after", [0, 1, 100, 3000])
def test_cut_after_n_bytes_downstream_delivers_exactly_n(server, cut_after):
    schedule = [FaultSpec(cut_after=cut_after)]
    with WeakNetworkProxy(_target(server), profile="3g-slow", schedule=schedule) as proxy:
        received = _raw_request(proxy, _get("/size/20000"))
        proxy.wait_idle()
        stats = proxy.stats
    assert len(received) == cut_after
    assert stats.bytes_down == cut_after
    assert stats.faults == {"cut_down": 1}


def test_cut_upstream_stops_the_request_after_n_bytes(server):
    schedule = [{"cut_after": 500, "cut_direction": "up"}]
    with WeakNetworkProxy(_target(server), schedule=schedule) as proxy:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            connection.request("POST", "/echo", body=b"p" * 20_000)
            connection.getresponse().read()
        connection.close()
        proxy.wait_idle()
        stats = proxy.stats
    assert stats.bytes_up == 500
    assert stats.faults == {"cut_up": 1}
    assert server.requests == 0


def test_a_truncated_response_fails_in_an_http_client(server):
    with WeakNetworkProxy(_target(server), schedule=[FaultSpec(cut_after=5000)]) as proxy:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        connection.request("GET", "/size/20000")
        with pytest.raises(http.client.IncompleteRead):
            connection.getresponse().read()
        connection.close()


def test_drop_response_after_the_server_committed(server):
    body = json.dumps({"ops": [1, 2, 3]}).encode()
    with WeakNetworkProxy(_target(server), schedule=[FaultSpec(drop_response=True)]) as proxy:
        received = _raw_request(proxy, _post(body))
        proxy.wait_idle()
        stats = proxy.stats
        assert _raw_request(proxy, _post(body)).endswith(body)  # the next one goes through
    assert received == b""
    assert server.requests == 2
    first = stats.per_connection[0]
    assert first.bytes_up == len(_post(body))
    assert (first.bytes_down, first.faults) == (0, ["drop_response"])
    assert first.bytes_dropped > len(body)


@pytest.mark.parametrize("status", [429, 502, 504])
def test_injected_status_never_reaches_the_server(server, status):
    schedule = [FaultSpec(status=status, retry_after=7)]
    with WeakNetworkProxy(_target(server), schedule=schedule) as proxy:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        connection.request("POST", "/echo", body=b"{}")
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
        proxy.wait_idle()
        stats = proxy.stats
    assert response.status == status
    assert body["error"]["status"] == status
    assert response.getheader("Retry-After") == ("7" if status == 429 else None)
    assert server.requests == 0
    assert stats.bytes_up == 0
    assert stats.faults == {f"status_{status}": 1}


def test_stall_holds_the_response_back(server):
    schedule = [FaultSpec(stall_s=1.0, stall_after=10)]
    with WeakNetworkProxy(_target(server), schedule=schedule) as proxy:
        started = time.monotonic()
        stalled = _raw_request(proxy, _get("/size/100"))
        stalled_s = time.monotonic() - started
        started = time.monotonic()
        normal = _raw_request(proxy, _get("/size/100"))
        normal_s = time.monotonic() - started
        faults = proxy.stats.faults
    assert stalled.endswith(b"\r\n\r\n" + b"x" * 100)
    assert normal.endswith(b"\r\n\r\n" + b"x" * 100)
    assert stalled_s >= 1.0  # held back at least the stall
    assert normal_s < stalled_s  # the next connection is not
    assert faults == {"stall_down": 1}


def test_refused_connection_is_reset(server):
    with WeakNetworkProxy(_target(server), schedule=[FaultSpec(refuse=True)]) as proxy:
        with pytest.raises(ConnectionError):
            _raw_request(proxy, _get("/size/10"))
        assert _raw_request(proxy, _get("/size/10")).startswith(b"HTTP/1.1 200")
        proxy.wait_idle()
        assert proxy.stats.faults == {"refuse": 1}
    assert server.requests == 0


def test_schedule_is_consumed_in_order_then_the_profile_applies(server):
    schedule = [FaultSpec(status=502), None, {"cut_after": 10}]
    with WeakNetworkProxy(_target(server), schedule=schedule) as proxy:
        answers = [_raw_request(proxy, _get("/size/50")) for _ in range(4)]
        proxy.set_schedule([FaultSpec(status=504)])
        answers.append(_raw_request(proxy, _get("/size/50")))
    assert [a[:12] for a in answers] == [
        b"HTTP/1.1 502",
        b"HTTP/1.1 200",
        b"HTTP/1.1 200"[:10],
        b"HTTP/1.1 200",
        b"HTTP/1.1 504",
    ]


def test_counters_add_up(server):
    bodies = [b"a" * 10, b"b" * 3000, b"c" * 40_000]
    with WeakNetworkProxy(_target(server), profile="none") as proxy:
        answers = [_raw_request(proxy, _post(body)) for body in bodies]
        proxy.wait_idle()
        stats = proxy.stats
    assert stats.connections == 3
    assert [c.bytes_up for c in stats.per_connection] == [len(_post(b)) for b in bodies]
    assert [c.bytes_down for c in stats.per_connection] == [len(a) for a in answers]
    assert stats.bytes_up == sum(len(_post(b)) for b in bodies)
    assert stats.bytes_down == sum(len(a) for a in answers)
    assert stats.faults == {}
    assert not any(c.open for c in stats.per_connection)


def test_unreachable_server_closes_the_client_connection():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with WeakNetworkProxy(("127.0.0.1", closed_port)) as proxy:
        assert _raw_request(proxy, _get("/size/10")) == b""
        proxy.wait_idle()
        assert proxy.stats.per_connection[0].error == "ConnectionRefusedError"


def test_stop_closes_open_connections_at_once(server):
    proxy = WeakNetworkProxy(_target(server), schedule=[FaultSpec(stall_s=60)]).start()
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    sock.sendall(_get("/size/10"))
    time.sleep(0.2)
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 30  # not the stall's 60 s
    assert sock.recv(65536) == b""
    sock.close()
    assert not proxy.stats.per_connection[0].open


def test_lossy_profile_cuts_deterministically_from_the_seed():
    lossy = PROFILES["lossy-2g"]
    plan = [default_faults(lossy, 7, n) for n in range(1, 101)]
    assert plan == [default_faults(lossy, 7, n) for n in range(1, 101)]
    assert plan != [default_faults(lossy, 8, n) for n in range(1, 101)]
    cuts = [f.cut_after for f in plan if f.cut_after is not None]
    assert 5 <= len(cuts) <= 40
    assert all(0 <= c <= lossy.cut_max_bytes for c in cuts)
    assert all(default_faults(PROFILES["gprs"], 7, n) == FaultSpec() for n in range(1, 101))


def test_set_profile_changes_the_rate(server):
    with WeakNetworkProxy(_target(server), profile="gprs") as proxy:
        proxy.set_profile("none")
        started = time.monotonic()
        _raw_request(proxy, _get("/size/25000"))
        assert time.monotonic() - started < 3.0  # GPRS would need 4 s for these bytes
        assert proxy.profile.name == "none"


def test_cli_help():
    result = subprocess.run(
        [sys.executable, "-m", "sync.proxy", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    for option in ("--profile", "--listen", "--target", "--seed", "--cut-after"):
        assert option in result.stdout
    assert "--drop-response-every" in result.stdout


def test_cli_forwards_and_prints_one_line_per_connection(server):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    target = f"127.0.0.1:{server.server_address[1]}"
    command = [sys.executable, "-m", "sync.proxy", "--profile", "none", "--target", target]
    command += ["--listen", f"127.0.0.1:{port}", "--drop-response-every", "2"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().startswith("none: http://127.0.0.1")
        request = _post(b"hello")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert process.stdout.readline().startswith(f"#1 up {len(request)} B down ")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(request)
            assert sock.recv(65536) == b""
        assert "faults drop_response" in process.stdout.readline()
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
