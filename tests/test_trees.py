"""Trees and measurements: ids from the phone, times kept in UTC, status changes."""

import uuid

import pytest

from server import households, trees
from server.db import get_db
from server.errors import ApiError


def test_client_times_are_stored_in_utc(app, world, db):
    tree_id, measurement_id = str(uuid.uuid4()), str(uuid.uuid4())
    with app.app_context():
        household = households.get_household(world.household_a)
        trees.register_tree(
            get_db(),
            household,
            tree_id=tree_id,
            species_id="cunninghamia_lanceolata",
            position="road",
        )
        trees.record_measurement(
            get_db(),
            tree_id,
            measurement_id=measurement_id,
            stems_mm=[100],
            height_cm=900,
            client_time="2025-06-01T16:00:00+08:00",
        )
    assert db["measurements"].get(measurement_id)["client_time"] == "2025-06-01T08:00:00.000Z"


@pytest.mark.parametrize("bad", ["yesterday", "2025-13-01T00:00:00Z", "2025-06-01T08:00:00", ""])
def test_a_client_time_without_a_zone_or_unreadable_is_refused(app, world, db, bad):
    before = db["measurements"].count
    with app.app_context(), pytest.raises(ApiError) as error:
        trees.record_measurement(
            get_db(),
            world.tree_a,
            measurement_id=str(uuid.uuid4()),
            stems_mm=[100],
            height_cm=900,
            client_time=bad,
        )
    assert error.value.status == 422
    assert db["measurements"].count == before


def test_a_tree_can_die_and_be_felled(app, world, db):
    with app.app_context():
        trees.set_status(get_db(), world.tree_a, "dead", "2026-10-01T00:00:00.000Z")
        with pytest.raises(ApiError):
            trees.set_status(get_db(), world.tree_a, "burnt", "2026-10-01T00:00:00.000Z")
        with pytest.raises(ApiError):
            trees.set_status(get_db(), "no-such-tree", "dead", "2026-10-01T00:00:00.000Z")
    row = db["trees"].get(world.tree_a)
    assert (row["status"], row["status_changed_at"]) == ("dead", "2026-10-01T00:00:00.000Z")
