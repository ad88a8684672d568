"""The staff workspace: each role's home (its to-do list first) and navigation to its screens.

Every screen is server-rendered Chinese; writes go through the domain services; forms post,
then redirect back with a message (so a reload never repeats a write).
"""

from flask import Flask, g

from server import english, units
from server.workspace import labels, nav
from server.workspace.blueprints import BLUEPRINTS
from server.workspace.nav import home_for


def init_app(app: Flask) -> None:
    """Formatting filters, the navigation bar in every page, and the blueprints."""
    units.init_app(app)
    english.init_app(app)

    @app.context_processor
    def navigation() -> dict:
        user = g.get("user")
        return {"nav_links": nav.links_for(user), "home_url": home_for(user)} | labels.all_labels()

    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
