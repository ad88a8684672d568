"""The blueprints of `server.carbon`: the methodology's API and its page, registered by
`create_app` in this order (not in __init__, which the modules below the routes import too)."""

from server.carbon import api, pages

BLUEPRINTS = (api.bp, pages.bp)
