"""The blueprints of `server.push`: the push subscription API, registered by `create_app` in
this order (not in __init__, which the modules below the routes import too)."""

from server.push import api

BLUEPRINTS = (api.bp,)
