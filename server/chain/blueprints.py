"""The blueprints of `server.chain`: the chain status API, registered by `create_app` in this
order (not in __init__, which the modules below the routes import too)."""

from server.chain import api

BLUEPRINTS = (api.bp,)
