# Gunicorn for Sipang: `gunicorn -c deploy/gunicorn.conf.py` (the systemd unit does this, and
# `sipang serve` for `make run`). One process with threads: Socket.IO's polling transport needs
# every request of a client to reach the same process (DESIGN.md §10). A county uses both
# cores by running several of these, each on its own port (sipang-web@.service), behind nginx
# with the Socket.IO message queue and the rate limits on Redis (docs/deploy.md).
import ctypes
import os
import signal

wsgi_app = "server.wsgi:app"
bind = os.environ.get("SIPANG_BIND", "127.0.0.1:8000")
workers = 1
worker_class = "gthread"
threads = int(os.environ.get("SIPANG_THREADS", "32"))  # also the most open WebSockets at once
timeout = 120  # a 4 MB photo chunk over 2G still arrives within it
graceful_timeout = 30
keepalive = 5
forwarded_allow_ips = "127.0.0.1"  # nginx on the same machine sets X-Forwarded-For/-Proto
accesslog = os.environ.get("SIPANG_ACCESS_LOG", "-")  # paths hold codes, never names or phones
errorlog = "-"
control_socket_disable = True  # several of these run on one machine, managed by systemd

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def on_starting(server) -> None:
    """Under `sipang serve`, gunicorn dies with it: a crash of `serve` leaves no web server."""
    parent = os.environ.get("SIPANG_SERVE_PID")
    if parent:
        _die_with_parent()
        if os.getppid() != int(parent):  # `serve` died before the line above
            os._exit(1)


def post_fork(server, worker) -> None:
    """A worker never outlives its arbiter (it would hold the port a restart needs)."""
    _die_with_parent()
