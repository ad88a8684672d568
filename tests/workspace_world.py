"""Workspace states for the route matrix (tests/test_access.py): the ids its pages need."""

import re
from typing import Any

WORKSPACE_BLUEPRINTS = (
    "workspace",
    "workspace_places",
    "workspace_carbon",
    "workspace_bundles",
    "workspace_methods",
    "workspace_finance",
    "workspace_enterprise",
    "workspace_bureau",
)
PLACEHOLDERS = ("<int:verification_id>", "<int:bundle_id>", "<order_id>", "<int:invoice_id>")


def workspace_sample(app, world, endpoint: str, rule: str, caller: str | None, restore):
    """(url, request kwargs) for a workspace route with ids the seeded world lacks, or None;
    `restore()` puts the registry sample in place of the test's database, returns its ids."""
    from server.access import rule_for

    if endpoint.split(".")[0] not in WORKSPACE_BLUEPRINTS:
        return None
    if not any(p in rule for p in PLACEHOLDERS):
        return None
    with app.app_context():
        access = rule_for(endpoint)
    if not (access.public or caller in access.roles):  # refused before the view runs
        return re.sub(r"<int:\w+>", "1", re.sub(r"<\w+>", "sample", rule)), {}
    ids: dict[str, Any] = restore()
    values = {
        "<int:verification_id>": str(ids["v_decided"]),
        "<int:bundle_id>": str(ids["<int:bundle_id>"]),
        "<order_id>": ids["held_order"],
        "<int:invoice_id>": "1",
    }
    for placeholder, value in values.items():
        rule = rule.replace(placeholder, value)
    return rule, {}
