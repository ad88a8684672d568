"""The staff workspace: each role's home (its to-do list first) and navigation to its screens.

Every screen is server-rendered Chinese; writes go through the domain services; forms post,
then redirect back with a message (so a reload never repeats a write).
"""

from flask import Flask, g

from server import english, units
from server.workspace import labels, nav

HOMES = {
    "admin": "/admin",
    "bureau": "/bureau",
    "finance": "/finance",
    "verifier": "/verifier",
    "enterprise": "/enterprise",
}


def home_for(user: dict | None) -> str:
    """Where a signed-in person lands: their role's home."""
    return HOMES.get((user or {}).get("role", ""), "/")


def blueprints() -> list:
    """The workspace's blueprints, one per screen group."""
    from server.workspace import (
        admin_baseline,
        admin_bundles,
        admin_carbon,
        admin_places,
        bureau,
        enterprise,
        finance,
        homes,
        methods,
    )

    return [
        homes.bp,
        admin_places.bp,
        admin_carbon.bp,
        admin_baseline.bp,
        admin_bundles.bp,
        methods.bp,
        finance.bp,
        enterprise.bp,
        bureau.bp,
    ]


def init_app(app: Flask) -> None:
    """Formatting filters, the navigation bar in every page, and the blueprints."""
    units.init_app(app)
    english.init_app(app)

    @app.context_processor
    def navigation() -> dict:
        user = g.get("user")
        return {"nav_links": nav.links_for(user), "home_url": home_for(user)} | labels.all_labels()

    for blueprint in blueprints():
        app.register_blueprint(blueprint)
