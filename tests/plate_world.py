"""Door-plate routes for the access matrix (tests/test_access.py): a tree photo that exists,
and a browser that passed the second factor before it turns on text messages."""

from server.db import get_db
from tests import registry_world as rw
from tests.conftest import PHONE


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
