"""The production server configuration runs the real app: gunicorn with deploy/gunicorn.conf.py
answers health, pages (compressed) and the Socket.IO handshake the dashboards use."""

import gzip
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.server_process import free_port

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"


def get(url: str, **headers) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return response.status, dict(response.headers), response.read()


def test_gunicorn_serves_the_app_with_the_deploy_config(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "SIPANG_INSTANCE": str(tmp_path / "instance"),
        "SIPANG_BIND": f"127.0.0.1:{port}",
        "SIPANG_THREADS": "4",
    }
    server = subprocess.Popen(  # noqa: S603 - our own program
        [str(GUNICORN), "-c", "deploy/gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    status = body = None
    try:
        for _ in range(300):  # until it listens (bounded; the test never times anything)
            try:
                status, _, body = get(f"{base}/healthz")
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                time.sleep(0.1)
        assert status == 200, body
        status, headers, body = get(f"{base}/app/js/app.js", **{"Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip"
        assert b"SyncScheduler" in gzip.decompress(body)
        status, _, body = get(f"{base}/socket.io/?EIO=4&transport=polling")
        assert status == 200 and body.startswith(b"0{") and b'"sid"' in body
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode()
    assert "GET /healthz" in output  # the access log, on stdout for journald
    assert server.returncode == 0, output
