"""The blueprints of `server.plate`: the door plate's pages, registered by `create_app` in this
order (not in __init__, which the modules below the routes import too)."""

from server.plate import pages

BLUEPRINTS = (pages.bp,)
