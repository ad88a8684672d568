"""The blueprints of `server.dashboards`: the bureau's county dashboard and the village public
pages, registered by `create_app` in this order (not in __init__, which the modules below the
routes import too)."""

from server.dashboards import county_board, public

BLUEPRINTS = (county_board.bp, public.bp)
