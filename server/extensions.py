"""Flask extension singletons, bound to an app in `create_app`."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_socketio import SocketIO
from flask_wtf.csrf import CSRFProtect

socketio = SocketIO()
limiter = Limiter(get_remote_address)
csrf = CSRFProtect()
