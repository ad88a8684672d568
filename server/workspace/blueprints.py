"""The blueprints of `server.workspace`, one per screen group, registered by its `init_app`
in this order."""

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

BLUEPRINTS = (
    homes.bp,
    admin_places.bp,
    admin_carbon.bp,
    admin_baseline.bp,
    admin_bundles.bp,
    methods.bp,
    finance.bp,
    enterprise.bp,
    bureau.bp,
)
