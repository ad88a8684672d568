"""The WSGI entry point for gunicorn (deploy/gunicorn.conf.py, and `sipang serve`, which runs
the same): the app built from the environment (`SIPANG_INSTANCE` and the other `SIPANG_*`
settings). The chain and Web Push workers run as their own services there (`sipang chain work`,
`sipang push work`), or beside gunicorn in `sipang serve`."""

from server import create_app
from server.unread_bodies import close_unread

app = create_app()
app.wsgi_app = close_unread(app.wsgi_app)
