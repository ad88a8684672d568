"""Behind the documented nginx (Debian's, started by the test with deploy/nginx.conf's
locations) and gunicorn with deploy/gunicorn.conf.py: each client keeps its own address,
so one client's wrong passwords lock neither another client nor the account, and a forged
X-Forwarded-For buys no fresh allowance. The browser protections arrive through nginx."""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.server_process import free_port

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).parent / "gunicorn"
SIPANG = Path(sys.executable).parent / "sipang"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
PASSWORD = "correct horse battery"

pytestmark = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx: make system-packages")


def nginx_config(tmp: Path, port: int, upstream: int) -> str:
    """A loopback server block holding deploy/nginx.conf's own locations and headers."""
    deployed = (ROOT / "deploy" / "nginx.conf").read_text()
    body = deployed.split("server {", 2)[1]
    keep = "\n".join(
        line
        for line in body.splitlines()
        if not re.match(r"\s*(listen|server_name|ssl_certificate)", line)
    )
    keep = keep.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{upstream}")
    keep = keep.rsplit("}", 1)[0]  # the server block's closing brace
    temp = " ".join(
        f"{name}_temp_path {tmp / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
worker_processes 1;
daemon off;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"};
events {{ worker_connections 64; }}
http {{
    access_log off;
    {temp}
    server {{
        listen 127.0.0.1:{port};
        {keep}
    }}
}}
"""


def wait_for(port: int, process: subprocess.Popen) -> None:
    for _ in range(1200):  # bounded (a busy machine starts gunicorn slowly); nothing is timed
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            assert process.poll() is None, "the process exited"
            time.sleep(0.1)
    raise AssertionError("never answered /healthz")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proxy")
    instance = tmp / "instance"
    env = {**os.environ, "SIPANG_INSTANCE": str(instance)}
    subprocess.run(  # noqa: S603 - our own program
        [str(SIPANG), "users", "add", "boss", "--role", "admin", "--password-stdin"],
        input=PASSWORD + "\n",
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )
    app_port = free_port()
    port = free_port()
    while port == app_port:  # two free ports, not the same one twice
        port = free_port()
    app = subprocess.Popen(  # noqa: S603
        [str(GUNICORN), "-c", "deploy/gunicorn.conf.py"],
        cwd=ROOT,
        env={
            **env,
            "SIPANG_BIND": f"127.0.0.1:{app_port}",
            "SIPANG_THREADS": "4",
            "SIPANG_PROXY_HOPS": "1",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / name).mkdir()
    (tmp / "nginx.conf").write_text(nginx_config(tmp, port, app_port))
    proxy = subprocess.Popen(  # noqa: S603
        [NGINX, "-c", str(tmp / "nginx.conf"), "-p", str(tmp), "-e", str(tmp / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(app_port, app)
        wait_for(port, proxy)
        yield port
    finally:
        proxy.terminate()
        app.terminate()
        proxy.wait(timeout=30)
        app.wait(timeout=30)


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
    attempts = [
        token_attempt("127.0.0.2", site, "wrong password!", forged=f"10.0.0.{n}") for n in range(10)
    ]
    assert attempts == [401] * 10
    # forged X-Forwarded-For headers bought no fresh allowance: nginx appends the real peer
    assert token_attempt("127.0.0.2", site, PASSWORD, forged="10.9.9.9") == 429
    # another client, the account's owner, signs in
    assert token_attempt("127.0.0.3", site, PASSWORD) == 201


def test_browser_protections_arrive_through_nginx(site):
    connection = http.client.HTTPConnection("127.0.0.1", site, timeout=10)
    connection.request("GET", "/")
    response = connection.getresponse()
    response.read()
    assert "frame-ancestors 'none'" in response.getheader("Content-Security-Policy")
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Strict-Transport-Security") == "max-age=31536000"
