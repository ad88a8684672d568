"""A county's production processes for tests, each on a free loopback port: gunicorn with
deploy/gunicorn.conf.py, Debian's redis-server and Debian's nginx with deploy/nginx.conf's own
locations in front."""

import http.client
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.server_process import free_port

ROOT = Path(__file__).resolve().parent.parent
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def free_ports(count: int) -> list[int]:
    """`count` different free ports."""
    ports: list[int] = []
    while len(ports) < count:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


def wait_for(port: int, process: subprocess.Popen, path: str = "/healthz") -> None:
    """Until the process answers `path` with 200 (bounded; a busy machine starts slowly)."""
    for _ in range(1200):
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except OSError:
            assert process.poll() is None, "the process exited"
        time.sleep(0.1)
    raise AssertionError(f"never answered {path}")


def start_gunicorn(instance: Path, port: int, **settings: str) -> subprocess.Popen:
    """gunicorn with deploy/gunicorn.conf.py for `instance` on `port`; `settings` become
    SIPANG_* environment variables."""
    env = {
        **os.environ,
        "SIPANG_INSTANCE": str(instance),
        "SIPANG_BIND": f"127.0.0.1:{port}",
        "SIPANG_THREADS": "4",
        "SIPANG_ACCESS_LOG": os.devnull,
        **{f"SIPANG_{name}": value for name, value in settings.items()},
    }
    return subprocess.Popen(  # noqa: S603 - our own program
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(instance.parent / f"gunicorn-{port}.log").open("ab"),
    )


def start_redis(folder: Path, port: int) -> subprocess.Popen:
    """Debian's redis-server on `port`, keeping nothing on disk; waits until it answers."""
    import redis

    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(  # noqa: S603 - Debian's redis-server
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(600):
        try:
            if client.ping():
                return process
        except redis.ConnectionError:
            assert process.poll() is None, "redis-server exited"
            time.sleep(0.05)
    raise AssertionError("redis-server never answered")


def nginx_config(tmp: Path, port: int, upstreams: list[int]) -> str:
    """deploy/nginx.conf's http-level lines and its HTTPS server block's locations, on a
    loopback port in front of `upstreams`, without TLS and the port 80 redirect."""
    deployed = (ROOT / "deploy" / "nginx.conf").read_text()
    outside, server = deployed.split("server {", 1)
    body = server.split("\nserver {", 1)[0]
    keep = "\n".join(
        line
        for line in body.splitlines()
        if not re.match(r"\s*(listen|server_name|ssl_certificate)", line)
    )
    keep = keep.rsplit("}", 1)[0]  # the server block's closing brace
    members = "\n".join(f"    server 127.0.0.1:{upstream};" for upstream in upstreams)
    outside = re.sub(r"^\s*server 127\.0\.0\.1:\d+;\n", "", outside, flags=re.M)
    outside = re.sub(r"(upstream \w+ \{\n)", lambda m: m.group(1) + members + "\n", outside)
    outside = outside.replace("/var/cache/nginx/sipang", str(tmp / "cache"))
    temp = " ".join(f"{name}_temp_path {tmp / name};" for name in TEMP_PATHS)
    # as root, nginx's workers would run as nobody, who cannot enter the test's folder
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""
{user}
worker_processes 1;
daemon off;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"};
events {{ worker_connections 1024; }}
http {{
    access_log off;
    {temp}
    {outside}
    server {{
        listen 127.0.0.1:{port};
        {keep}
    }}
}}
"""


def start_nginx(tmp: Path, port: int, upstreams: list[int]) -> subprocess.Popen:
    """Debian's nginx with deploy/nginx.conf's locations on `port` (not yet waited for)."""
    for name in TEMP_PATHS:
        (tmp / name).mkdir(parents=True, exist_ok=True)
    (tmp / "nginx.conf").write_text(nginx_config(tmp, port, upstreams))
    return subprocess.Popen(  # noqa: S603 - Debian's nginx
        [NGINX, "-c", str(tmp / "nginx.conf"), "-p", str(tmp), "-e", str(tmp / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
