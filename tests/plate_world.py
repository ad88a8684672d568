"""Door-plate worlds: for the access matrix (tests/test_access.py) a tree photo that exists
and a browser that passed the second factor before it turns on text messages; for the farmer
in a browser, a household with photographed trees, a sale and a T+1 transfer."""

import pytest

from server import households
from server.db import get_db
from server.registry import bundles, issuance
from tests import registry_world as rw
from tests.conftest import BANK, PHONE
from tests.helpers_orders import later, paid_order, pay_everyone


def plate_sample(app, client, world, endpoint: str) -> tuple[str, dict] | None:
    """(url, request body) that a public caller may use on a door-plate route, or None."""
    code = world.household_a
    if endpoint == "farmer.household_tree_photo":
        with app.app_context():
            db = get_db()
            sha256 = rw.tree_photo(world.village_a)
            rw.store_blob(db, sha256)
            db.execute(
                "UPDATE measurements SET photo_sha256 = ? WHERE tree_id = ?", [sha256, world.tree_a]
            )
        return f"/h/{code}/trees/{world.tree_a}.jpg", {}
    if endpoint == "farmer.sms_choice":
        token = client.get("/api/v1/auth/csrf").json["csrf_token"]
        opened = client.post(
            f"/h/{code}/unlock", data={"phone_tail": PHONE[-4:]}, headers={"X-CSRFToken": token}
        )
        assert opened.status_code == 303
        return f"/h/{code}/sms", {"data": {"sms": "on"}}
    return None


SPOTS = [(29.2611, 115.0934), (29.2612, 115.0936), (29.2609, 115.0931)]


@pytest.fixture
def paid_household(app, world):
    """A household of village B with a phone, a bank card, photographed trees placed around
    its house, and one T+1 transfer; returns (code, the bundle it sells in)."""
    with app.app_context():
        db = get_db()
        grown = rw.grow_village(db, world.village_b, households_count=1, trees_per_household=12)
        code = grown["households"][0]
        db.execute(  # its phone and bank card, as a roster import records them
            "UPDATE households SET phone_enc = ?, phone_masked = ?, bank_account_enc = ?, "
            "bank_account_masked = ? WHERE code = ?",
            [*households.personal_columns(code, phone=PHONE, bank_account=BANK).values(), code],
        )
        found = rw.verify(db, grown["calculation_id"], world.user_ids["verifier"])
        made = rw.bundle(db)
        issuance.issue(db, found, made, None)
        bundles.publish(db, bundles.get_bundle(db, made["id"]))
        paid_order(db, made["id"], 1)  # one tonne now, one after the farmer asks for text messages
        pay_everyone(db, later(1))
        trees = [
            row[0]
            for row in db.execute(
                "SELECT t.id FROM trees t JOIN households h ON h.id = t.household_id "
                "WHERE h.code = ? ORDER BY t.created_at, t.id",
                [code],
            )
        ]
        for tree_id, (lat, lon) in zip(trees, SPOTS, strict=False):
            db.execute(
                "UPDATE measurements SET latitude = ?, longitude = ? WHERE tree_id = ?",
                [lat, lon, tree_id],
            )
    return code, made["id"]
