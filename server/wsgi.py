"""The WSGI entry point for a production server (deploy/gunicorn.conf.py): the app built from
the environment (`SIPANG_INSTANCE` and the other `SIPANG_*` settings). The chain and Web Push
workers run as their own services there (`sipang chain work`, `sipang push work`)."""

from server import create_app

app = create_app()
