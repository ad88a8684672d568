"""The blueprints of `server.payouts`: the finance screens (HTML) and the payouts API (JSON),
registered by `create_app` in this order (not in __init__, which the modules below the routes
import too)."""

from server.payouts import api, pages

BLUEPRINTS = (pages.bp, api.bp)
