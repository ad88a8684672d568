"""Measurers' phones: one-time enrolment codes, device tokens, listing and revocation."""

import hashlib
import re

import pytest
from conftest import PASSWORD, bearer

from server import devices, users
from server.db import get_db


def new_code(client, world, measurer_id: int | None = None):
    return client.post(
        "/api/v1/devices/enrolment-codes",
        json={"measurer_id": measurer_id or world.measurer_id},
        headers=bearer(world.tokens["admin"]),
    )


def enrol(client, code: str, label: str = "红米 Note 4"):
    return client.post("/api/v1/devices/enrol", json={"code": code, "label": label})


def code_hash(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").upper().encode()).hexdigest()


def error_code(response) -> str:
    return response.json["error"]["code"]


@pytest.fixture
def other_county_device(app):
    """A measurer in county 360424 with an enrolled phone: (device id, token)."""
    with app.app_context():
        db = get_db()
        measurer = users.create_user(
            db,
            username="measurer.c",
            display_name="外县计量员",
            role="measurer",
            village_code=app.world.village_c,
        )
        code = devices.create_enrolment_code(db, measurer, app.world.user_ids["admin"])["code"]
        enrolled = devices.enrol(db, code, "外县手机")
    return enrolled["device_id"], enrolled["token"]


def test_admin_makes_an_enrolment_code(client, world, db):
    response = new_code(client, world)

    assert response.status_code == 201
    code = response.json["code"]
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}", code)
    assert response.json["expires_at"]
    row = next(db["enrolment_codes"].rows_where("code_hash = ?", [code_hash(code)]))
    assert row["user_id"] == world.measurer_id
    assert row["created_by"] == world.user_ids["admin"]
    assert row["expires_at"] == response.json["expires_at"]
    assert row["used_at"] is None
    assert code not in str(list(db["enrolment_codes"].rows))


def test_enrolling_returns_a_working_device_token(client, world, db):
    code = new_code(client, world).json["code"]

    response = enrol(client, code)

    assert response.status_code == 201
    assert response.json["village_code"] == world.village_a
    token, device_id = response.json["token"], response.json["device_id"]
    households = client.get(f"/api/v1/villages/{world.village_a}/households", headers=bearer(token))
    assert households.status_code == 200
    assert [h["code"] for h in households.json["households"]] == [world.household_a]
    me = client.get("/api/v1/auth/me", headers=bearer(token))
    assert me.json["device"] == {"id": device_id, "label": "红米 Note 4"}
    device = db["devices"].get(device_id)
    assert device["user_id"] == world.measurer_id
    assert device["label"] == "红米 Note 4"
    assert device["revoked_at"] is None
    spent = next(db["enrolment_codes"].rows_where("code_hash = ?", [code_hash(code)]))
    assert spent["used_at"] is not None
    assert spent["device_id"] == device_id
    token_row = next(db["api_tokens"].rows_where("device_id = ?", [device_id]))
    assert token_row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()


def test_device_token_stays_inside_its_village(client, world):
    token = enrol(client, new_code(client, world).json["code"]).json["token"]

    response = client.get(f"/api/v1/villages/{world.village_b}/households", headers=bearer(token))

    assert response.status_code == 403
    assert error_code(response) == "out_of_scope"


def test_enrolment_code_is_forgiving_about_case_and_dashes(client, world, db):
    code = new_code(client, world).json["code"]

    response = enrol(client, code.replace("-", "").lower())

    assert response.status_code == 201
    assert db["devices"].count == 2


def test_enrolment_code_works_only_once(client, world, db):
    code = new_code(client, world).json["code"]
    assert enrol(client, code).status_code == 201
    devices_before = db["devices"].count

    response = enrol(client, code, "second phone")

    assert response.status_code == 401
    assert error_code(response) == "invalid_enrolment_code"
    assert db["devices"].count == devices_before
    assert list(db["devices"].rows_where("label = 'second phone'")) == []


def test_unknown_enrolment_code_is_refused(client, db):
    response = enrol(client, "AAAA-BBBB-CCCC")

    assert response.status_code == 401
    assert error_code(response) == "invalid_enrolment_code"
    assert db["devices"].count == 1


def test_enrolment_code_for_a_non_measurer_is_refused(client, world, db):
    response = new_code(client, world, world.user_ids["finance"])

    assert response.status_code == 422
    assert error_code(response) == "validation_failed"
    assert db["enrolment_codes"].count == 1


def test_enrolment_code_for_an_unknown_user_is_404(client, world, db):
    response = new_code(client, world, 9999)

    assert response.status_code == 404
    assert db["enrolment_codes"].count == 1


@pytest.mark.parametrize("role", ["bureau", "finance", "verifier", "enterprise", "measurer"])
def test_only_admin_makes_enrolment_codes(client, world, db, role):
    response = client.post(
        "/api/v1/devices/enrolment-codes",
        json={"measurer_id": world.measurer_id},
        headers=bearer(world.tokens[role]),
    )

    assert response.status_code == 403
    assert db["enrolment_codes"].count == 1


def test_expired_enrolment_code_is_refused(client, world, db):
    code = new_code(client, world).json["code"]
    db.execute(
        "UPDATE enrolment_codes SET expires_at = ? WHERE code_hash = ?",
        ["2000-01-01T00:00:00.000Z", code_hash(code)],
    )
    db.conn.commit()

    response = enrol(client, code)

    assert response.status_code == 401
    assert error_code(response) == "invalid_enrolment_code"
    assert db["devices"].count == 1
    row = next(db["enrolment_codes"].rows_where("code_hash = ?", [code_hash(code)]))
    assert row["used_at"] is None


def test_enrolment_code_of_a_disabled_measurer_is_refused(client, world, db):
    code = new_code(client, world).json["code"]
    client.post(f"/api/v1/users/{world.measurer_id}/disable", headers=bearer(world.tokens["admin"]))

    response = enrol(client, code)

    assert response.status_code == 401
    assert error_code(response) == "invalid_enrolment_code"
    assert db["devices"].count == 1


def test_disabling_a_measurer_stops_its_phones(client, world):
    client.post(f"/api/v1/users/{world.measurer_id}/disable", headers=bearer(world.tokens["admin"]))

    response = client.get(
        f"/api/v1/villages/{world.village_a}/households", headers=bearer(world.tokens["measurer"])
    )

    assert response.status_code == 401
    assert error_code(response) == "invalid_token"


def test_revoking_a_device_stops_its_token(client, world, db):
    token = world.tokens["measurer"]
    url = f"/api/v1/villages/{world.village_a}/households"
    assert client.get(url, headers=bearer(token)).status_code == 200

    response = client.post(
        f"/api/v1/devices/{world.device_id}/revoke", headers=bearer(world.tokens["admin"])
    )

    assert response.status_code == 200
    assert response.json == {"revoked": True}
    refused = client.get(url, headers=bearer(token))
    assert refused.status_code == 401
    assert error_code(refused) == "invalid_token"
    assert db["devices"].get(world.device_id)["revoked_at"] is not None
    assert all(
        row["revoked_at"] for row in db["api_tokens"].rows_where("device_id = ?", [world.device_id])
    )
    assert [r["subject"] for r in db["audit_log"].rows_where("action = 'device.revoked'")] == [
        f"device:{world.device_id}"
    ]


def test_revoking_one_device_leaves_the_others(client, world):
    other = enrol(client, new_code(client, world).json["code"]).json["token"]

    client.post(f"/api/v1/devices/{world.device_id}/revoke", headers=bearer(world.tokens["admin"]))

    response = client.get(f"/api/v1/villages/{world.village_a}/households", headers=bearer(other))
    assert response.status_code == 200


def test_revoking_an_unknown_device_is_404(client, world):
    response = client.post("/api/v1/devices/nope/revoke", headers=bearer(world.tokens["admin"]))

    assert response.status_code == 404
    assert error_code(response) == "not_found"


def test_revoking_needs_admin(client, world, db):
    response = client.post(
        f"/api/v1/devices/{world.device_id}/revoke", headers=bearer(world.tokens["bureau"])
    )

    assert response.status_code == 403
    assert db["devices"].get(world.device_id)["revoked_at"] is None


def test_admin_lists_every_device(client, world, other_county_device):
    other_id, _ = other_county_device

    response = client.get("/api/v1/devices", headers=bearer(world.tokens["admin"]))

    assert response.status_code == 200
    listed = {d["id"]: d for d in response.json["devices"]}
    assert set(listed) == {world.device_id, other_id}
    assert listed[world.device_id]["village_code"] == world.village_a
    assert listed[world.device_id]["username"] == "measurer"
    assert listed[world.device_id]["label"] == "test phone"
    assert listed[world.device_id]["revoked_at"] is None
    assert listed[other_id]["village_code"] == world.village_c


def test_bureau_lists_only_its_county_devices(client, world, other_county_device):
    response = client.get("/api/v1/devices", headers=bearer(world.tokens["bureau"]))

    assert response.status_code == 200
    assert [d["id"] for d in response.json["devices"]] == [world.device_id]


def test_device_list_shows_revocation(client, world):
    client.post(f"/api/v1/devices/{world.device_id}/revoke", headers=bearer(world.tokens["admin"]))

    response = client.get("/api/v1/devices", headers=bearer(world.tokens["admin"]))

    assert [d["revoked_at"] is not None for d in response.json["devices"]] == [True]


@pytest.mark.parametrize("role", ["finance", "verifier", "enterprise", "measurer"])
def test_other_roles_cannot_list_devices(client, world, role):
    response = client.get("/api/v1/devices", headers=bearer(world.tokens[role]))

    assert response.status_code == 403


def test_device_list_with_a_session(client, world):
    token = client.get("/api/v1/auth/csrf").json["csrf_token"]
    client.post(
        "/api/v1/auth/login",
        json={"username": "bureau", "password": PASSWORD},
        headers={"X-CSRFToken": token},
    )

    response = client.get("/api/v1/devices")

    assert response.status_code == 200
    assert [d["id"] for d in response.json["devices"]] == [world.device_id]
