"""Flags and their review, and the credit-calculation API: who may see and review what,
how reviews are stored, and bad input. The crediting rules themselves are tested through the
sync API in tests/test_crediting_integrity.py."""

import io
import json
import random
import uuid
from datetime import timedelta

import pytest
from conftest import bearer
from PIL import Image
from test_carbon_api import (
    CENTRE,
    METRES_PER_DEGREE_LAT,
    Recorded,
    calculate,
    measured,
    other_county_bureau,
    other_village_measurer,
    review,
    table_counts,
)

from server import photos, trees
from server.carbon import evidence, records
from server.carbon.method import load_method
from server.clock import iso, now
from server.db import first, get_db
from server.photos import blob_paths

FIR = "cunninghamia_lanceolata"
CAMPHOR = "cinnamomum_camphora"
METHOD = load_method()
PERIOD = {"period_start": "2025-01-01", "period_end": "2025-12-31"}
BEFORE = "2024-06-01T08:00:00.000Z"  # a baseline, before the period
DURING = "2025-06-01T08:00:00.000Z"  # a re-measurement inside it
_spots = iter(range(1, 10_000))


def days_ago(days: float) -> str:
    return iso(now() - timedelta(days=days))


def stored_photo(db, seed: str) -> str:
    """A distinct photo (random pixels), stored whole under its sha256 like an upload."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (32, 24), rng.randbytes(32 * 24 * 3))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    sha256 = photos.store(db, out.getvalue())
    evidence.fingerprint(db, sha256, blob_paths(sha256)[0])
    return sha256


def spot() -> dict:
    """A place of its own near the village centre (trees 40 m apart), GPS ±4 m."""
    n = next(_spots)
    return {
        "latitude": CENTRE[0] + (n % 50) * 40 / METRES_PER_DEGREE_LAT,
        "longitude": CENTRE[1] + (n // 50) * 40 / METRES_PER_DEGREE_LAT,
        "gps_accuracy_m": 4.0,
    }


def plant(
    app,
    species: str,
    measurements: list[dict],
    *,
    household: str | None = None,
    planting_year: int | None = None,
    registered_at: str | None = None,
    history: bool = True,
) -> tuple[str, list[Recorded]]:
    """Register a tree (household A unless told) and record its readings through the
    services, each with its own stored photo and a place of its own unless told otherwise.
    With `history`, readings older than a month are history a reviewer has accepted: their
    `late_reading` flag is settled and left out of the returned flags."""
    with app.app_context():
        db = get_db()
        owner = first(
            db, "SELECT * FROM households WHERE code = ?", [household or app.world.household_a]
        )
        tree_id = str(uuid.uuid4())
        trees.register_tree(
            db,
            owner,
            tree_id=tree_id,
            species_id=species,
            position="house",
            planting_year=planting_year,
            registered_at=registered_at,
        )
        place = spot()
        recorded = []
        for index, measurement in enumerate(measurements):
            measurement_id = str(uuid.uuid4())
            photo = {"photo_sha256": stored_photo(db, f"{tree_id}-{index}")}
            flags = trees.record_measurement(
                db, tree_id, measurement_id=measurement_id, **place | photo | measurement
            )
            if history:
                for late in db.query(
                    "SELECT id FROM flags WHERE measurement_id = ? AND code = 'late_reading'",
                    [measurement_id],
                ):
                    records.review_flag(db, late["id"], "accepted", "历史记录", 1)
                flags = [f for f in flags if f["code"] != "late_reading"]
            recorded.append(Recorded(measurement_id, flags))
    return tree_id, recorded


def flags_of(db, measurement_id: str, settled: bool = False) -> list[tuple[str, str]]:
    """A measurement's open flags (all of them with `settled`), as (code, reason)."""
    return [
        (row["code"], row["reason"])
        for row in db.query(
            "SELECT code, reason, decision FROM flags WHERE measurement_id = ? ORDER BY id",
            [measurement_id],
        )
        if settled or row["decision"] is None
    ]


# --- listing flags ---------------------------------------------------------------------


def test_village_flags_lists_open_flags_with_reasons(app, client, world, db):
    _, (_, shrunk) = plant(app, FIR, [measured(BEFORE, 200, 1500), measured(DURING, 150, 1500)])

    response = client.get(
        f"/api/v1/villages/{world.village_a}/flags", headers=bearer(world.tokens["bureau"])
    )

    assert response.status_code == 200
    listed = response.json["flags"]
    assert [f["code"] for f in listed] == ["photo_missing", "dbh_shrinking"]
    assert listed[0]["id"] == world.flag_id
    assert listed[1]["measurement_id"] == shrunk.id
    assert listed[1]["reason"].startswith("胸径从 20 厘米降到 15 厘米")
    assert all(f["decision"] is None and f["reviewed_at"] is None for f in listed)
    assert [row["id"] for row in db["flags"].rows_where("decision IS NULL")] == [
        f["id"] for f in listed
    ]


def test_village_flags_filter_by_status(app, client, world):
    plant(app, FIR, [measured(BEFORE, 200, 1500), measured(DURING, 150, 1500)])
    headers = bearer(world.tokens["verifier"])
    assert review(client, world, world.flag_id).status_code == 200

    def codes(status):
        response = client.get(
            f"/api/v1/villages/{world.village_a}/flags?status={status}", headers=headers
        )
        assert response.status_code == 200
        return [(f["code"], f["decision"]) for f in response.json["flags"]]

    assert codes("open") == [("dbh_shrinking", None)]
    assert ("photo_missing", "accepted") in codes("reviewed")
    assert ("late_reading", "accepted") in codes("reviewed")  # settled history, still shown
    assert ("dbh_shrinking", None) in codes("all")


@pytest.mark.parametrize("status", ["closed", "OPEN", "", "open'--"])
def test_village_flags_with_a_bad_status_is_422(client, world, status):
    response = client.get(
        f"/api/v1/villages/{world.village_a}/flags",
        query_string={"status": status},
        headers=bearer(world.tokens["bureau"]),
    )

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_failed"
    assert "open, reviewed, all" in response.json["error"]["message"]


def test_the_village_measurer_sees_its_flags(client, world):
    response = client.get(
        f"/api/v1/villages/{world.village_a}/flags", headers=bearer(world.tokens["measurer"])
    )

    assert response.status_code == 200
    assert [f["id"] for f in response.json["flags"]] == [world.flag_id]  # the open one


def test_a_measurer_of_another_village_may_not_see_its_flags(app, client, world):
    token = other_village_measurer(app)

    response = client.get(f"/api/v1/villages/{world.village_a}/flags", headers=bearer(token))

    assert response.status_code == 403
    assert response.json["error"]["code"] == "out_of_scope"


@pytest.mark.parametrize(("role", "status"), [("finance", 403), ("enterprise", 403), (None, 401)])
def test_village_flags_refuse_other_roles(client, world, role, status):
    headers = bearer(world.tokens[role]) if role else {}

    response = client.get(f"/api/v1/villages/{world.village_a}/flags", headers=headers)

    assert response.status_code == status


def test_flags_of_an_unknown_village_is_404(client, world):
    response = client.get(
        "/api/v1/villages/360423101299/flags", headers=bearer(world.tokens["admin"])
    )

    assert response.status_code == 404


# --- reviewing flags -------------------------------------------------------------------


@pytest.mark.parametrize("decision", ["accepted", "rejected"])
def test_bureau_reviews_a_flag(client, world, db, decision):
    audit_before = db["audit_log"].count

    response = review(client, world, world.flag_id, decision, note="Re-measured on site.")

    assert response.status_code == 200
    flag = response.json["flag"]
    assert flag["id"] == world.flag_id
    assert flag["code"] == "photo_missing"
    assert flag["decision"] == decision
    assert flag["review_note"] == "Re-measured on site."
    assert flag["reviewed_at"]
    row = db["flags"].get(world.flag_id)
    assert row["decision"] == decision
    assert row["reviewed_by"] == world.user_ids["bureau"]
    assert row["reviewed_at"] == flag["reviewed_at"]
    assert row["review_note"] == "Re-measured on site."
    (entry,) = db.query("SELECT * FROM audit_log WHERE seq > ?", [audit_before])
    assert entry["action"] == f"flag.{decision}"
    assert entry["subject"] == f"flag:{world.flag_id}"
    assert entry["actor"] == f"user:{world.user_ids['bureau']}"
    assert json.loads(entry["detail"]) == {
        "code": "photo_missing",
        "measurement": row["measurement_id"],
        "voided": [world.calculation_id] if decision == "rejected" else [],
    }


def test_a_review_without_a_note_is_stored(client, world, db):
    response = client.post(
        f"/api/v1/flags/{world.flag_id}/review",
        json={"decision": "accepted"},
        headers=bearer(world.tokens["verifier"]),
    )

    assert response.status_code == 200
    assert response.json["flag"]["review_note"] is None
    assert db["flags"].get(world.flag_id)["reviewed_by"] == world.user_ids["verifier"]


def test_reviewing_a_flag_twice_is_409_and_keeps_the_first_decision(client, world, db):
    assert review(client, world, world.flag_id, "accepted").status_code == 200
    first_row = db["flags"].get(world.flag_id)
    before = table_counts(db)

    response = review(client, world, world.flag_id, "rejected", token=world.tokens["admin"])

    assert response.status_code == 409
    assert response.json["error"]["code"] == "conflict"
    assert "复核过" in response.json["error"]["message"]
    assert db["flags"].get(world.flag_id) == first_row
    assert table_counts(db) == before


@pytest.mark.parametrize("flag_id", [999_999, 0, 2**63, 2**64])
def test_reviewing_an_unknown_flag_is_404(client, world, db, flag_id):
    before = table_counts(db)

    response = review(client, world, flag_id)

    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert table_counts(db) == before


def test_bureau_of_another_county_may_not_review(app, client, world, db):
    token = other_county_bureau(app)
    before = table_counts(db)

    response = review(client, world, world.flag_id, token=token)

    assert response.status_code == 403
    assert response.json["error"]["code"] == "out_of_scope"
    assert db["flags"].get(world.flag_id)["decision"] is None
    assert table_counts(db) == before


@pytest.mark.parametrize("role", ["enterprise", "finance", "measurer"])
def test_other_roles_may_not_review(client, world, db, role):
    response = review(client, world, world.flag_id, token=world.tokens[role])

    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert db["flags"].get(world.flag_id)["decision"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"decision": "maybe"},
        {"note": "no decision"},
        {"decision": "accepted", "note": "x" * 501},
        {"decision": "accepted", "reviewer": 1},
        {"decision": ["accepted"]},
    ],
)
def test_a_bad_review_is_422_and_changes_nothing(client, world, db, body):
    before = table_counts(db)

    response = client.post(
        f"/api/v1/flags/{world.flag_id}/review", json=body, headers=bearer(world.tokens["bureau"])
    )

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_failed"
    assert db["flags"].get(world.flag_id)["decision"] is None
    assert table_counts(db) == before


# --- the credit-calculation API --------------------------------------------------------


def test_the_seeded_calculation_is_blocked_by_its_open_flag(client, world, db):
    response = client.get(
        f"/api/v1/credit-calculations/{world.calculation_id}",
        headers=bearer(world.tokens["verifier"]),
    )

    assert response.status_code == 200
    calculation = response.json["calculation"]
    assert calculation["open_flags"] == 1
    assert calculation["issuable"] is False
    (line,) = calculation["trees"]
    assert line["tree_id"] == world.tree_a
    assert calculation["gross_g"] == line["stock_end_g"] - line["stock_start_g"]
    assert calculation["method_sha256"] == METHOD.sha256
    assert calculation["buffer_pct"] == 20


def test_reviewing_the_open_flag_makes_the_calculation_issuable(client, world, db):
    assert review(client, world, world.flag_id, "accepted").status_code == 200

    response = client.get(
        f"/api/v1/credit-calculations/{world.calculation_id}",
        headers=bearer(world.tokens["verifier"]),
    )

    assert response.json["calculation"]["open_flags"] == 0
    assert response.json["calculation"]["issuable"] is True


def test_rejecting_a_reading_voids_the_calculation_that_used_it(client, world, db):
    assert review(client, world, world.flag_id, "rejected").status_code == 200

    calculation = db["credit_calculations"].get(world.calculation_id)
    assert calculation["status"] == "void"
    assert "驳回" in calculation["void_reason"]


def test_a_period_ending_far_ahead_is_calculated(client, world):
    response = calculate(client, world, {"period_start": "2027-01-01", "period_end": "9999-12-30"})
    assert response.status_code == 201, response.json


def test_an_empty_period_gives_an_empty_calculation(client, world):
    response = calculate(client, world, {"period_start": "2020-01-01", "period_end": "2020-12-31"})

    assert response.status_code == 201
    calculation = response.json["calculation"]
    assert (calculation["gross_g"], calculation["tonnes"], calculation["trees"]) == (0, 0, [])
    assert calculation["issuable"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"period_start": "2025-12-31", "period_end": "2025-01-01"}, "period_end"),
        ({"period_start": "2025-06-01", "period_end": "2025-06-01"}, "period_end"),
        ({"period_start": "2025-02-30", "period_end": "2025-12-31"}, "period_start"),
        ({"period_start": "2025-01-01", "period_end": "31/12/2025"}, "period_end"),
        ({"period_start": "2025-01-01"}, "(body)"),
        ({**PERIOD, "buffer_pct": 0}, "(body)"),  # the buffer is the methodology's, never asked
        ({**PERIOD, "buffer_pct": 19}, "(body)"),
        ({**PERIOD, "tonnes": 5}, "(body)"),
        ({"period_start": "2025-01-01", "period_end": "9999-12-31"}, "period_end"),
        ({"period_start": "1999-12-31", "period_end": "2025-12-31"}, "period_end"),
    ],
)
def test_a_bad_period_is_422_and_stores_nothing(client, world, db, body, field):
    before = table_counts(db)

    response = calculate(client, world, body)

    assert response.status_code == 422
    assert response.json["error"]["code"] == "validation_failed"
    assert field in [d["field"] for d in response.json["error"]["details"]]
    assert table_counts(db) == before


def test_a_village_outside_the_county_is_403(client, world, db):
    before = table_counts(db)

    response = calculate(client, world, village=world.village_c)

    assert response.status_code == 403
    assert response.json["error"]["code"] == "out_of_scope"
    assert table_counts(db) == before


def test_bureau_of_another_county_may_not_read_a_calculation(app, client, world):
    token = other_county_bureau(app)

    response = client.get(
        f"/api/v1/credit-calculations/{world.calculation_id}", headers=bearer(token)
    )

    assert response.status_code == 403
    assert response.json["error"]["code"] == "out_of_scope"


@pytest.mark.parametrize("role", ["enterprise", "finance", "measurer"])
def test_other_roles_may_not_calculate_credit(client, world, db, role):
    before = table_counts(db)

    response = calculate(client, world, token=world.tokens[role])

    assert response.status_code == 403
    assert response.json["error"]["code"] == "forbidden"
    assert table_counts(db) == before


def test_credit_for_an_unknown_village_is_404(client, world, db):
    before = table_counts(db)

    response = calculate(client, world, village="360423101299", token=world.tokens["admin"])

    assert response.status_code == 404
    assert table_counts(db) == before


@pytest.mark.parametrize("calculation_id", [999_999, 0, 2**63])
def test_an_unknown_calculation_is_404(client, world, calculation_id):
    response = client.get(
        f"/api/v1/credit-calculations/{calculation_id}", headers=bearer(world.tokens["admin"])
    )

    assert response.status_code == 404
