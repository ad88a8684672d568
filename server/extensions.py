"""Flask extension singletons, bound to an app in `create_app`."""

from flask import Flask, Response, request
from flask_compress import Compress
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_socketio import SocketIO
from flask_wtf.csrf import CSRFProtect


class SiteSocketIO(SocketIO):
    """Socket.IO whose server processes share one message queue when the site has Redis
    (`SOCKETIO_MESSAGE_QUEUE`): an event emitted in one process reaches the clients connected
    to every other. Without it each app keeps its events to itself, as one process needs."""

    def init_app(self, app: Flask, **kwargs) -> None:
        # The singleton serves app after app (tests build many): forget the last one's queue.
        self.server_options.pop("client_manager", None)
        self.server_options.pop("message_queue", None)
        queue = app.config.get("SOCKETIO_MESSAGE_QUEUE")
        if queue:
            kwargs["message_queue"] = queue
        super().init_app(app, **kwargs)


socketio = SiteSocketIO()
limiter = Limiter(get_remote_address)
csrf = CSRFProtect()
compress = Compress()


def init_compression(app: Flask) -> None:
    """Pages, scripts, styles and JSON go out compressed (brotli, else gzip): 2G pays per byte."""
    app.config.setdefault("COMPRESS_REGISTER", False)  # applied by `_compress` below
    app.config.setdefault("COMPRESS_ALGORITHM", ["br", "gzip"])
    app.config.setdefault("COMPRESS_BR_LEVEL", 6)  # as fast as gzip 6, 5–20 % smaller
    compress.init_app(app)
    app.after_request(_compress)


def _compress(response: Response) -> Response:
    if request.method == "HEAD" or response.status_code == 204:
        return response  # no body to compress (Flask-Compress would invent one)
    if response.is_streamed and response.direct_passthrough:
        response.direct_passthrough = False  # a file of the app's: small, so read it whole and
        response.make_sequence()  # compress it with a Content-Length, gzip included
    return compress.after_request(response)
