# Gunicorn for Sipang: `gunicorn -c deploy/gunicorn.conf.py` (the systemd unit does this).
# One process with threads: Socket.IO's live updates need every request of a client to reach
# the same process (DESIGN.md §10), and SQLite in WAL mode serialises writes anyway.
import os

wsgi_app = "server.wsgi:app"
bind = os.environ.get("SIPANG_BIND", "127.0.0.1:8000")
workers = 1
worker_class = "gthread"
threads = int(os.environ.get("SIPANG_THREADS", "32"))  # also the most open WebSockets at once
timeout = 120  # a 4 MB photo chunk over 2G still arrives within it
graceful_timeout = 30
keepalive = 5
forwarded_allow_ips = "127.0.0.1"  # nginx on the same machine sets X-Forwarded-For/-Proto
accesslog = "-"  # request lines only: paths hold codes, never names or phone numbers
errorlog = "-"
