"""The blueprints of `server.registry`: the registry's API, market, pages, checkout, buyers' and
finance pages, registered by `create_app` in this order (not in __init__, which the modules
below the routes import too)."""

from server.registry import api, buyers, checkout, finance_pages, market, pages

BLUEPRINTS = (api.bp, market.bp, pages.bp, checkout.bp, buyers.bp, finance_pages.bp)
