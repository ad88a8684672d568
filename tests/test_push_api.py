"""The push subscription API refuses bad input in the one error shape and stores nothing."""

import base64
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from server.db import get_db
from server.push.owners import household_token
from tests import registry_world as rw
from tests.conftest import PHONE, bearer


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def point() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def subscription(**changes) -> dict:
    sub = {
        "endpoint": "https://push.example.net/send/" + os.urandom(8).hex(),
        "keys": {"p256dh": b64url(point()), "auth": b64url(os.urandom(16))},
    }
    keys = changes.pop("keys", {})
    return sub | changes | {"keys": sub["keys"] | keys}


def reserve_one_tonne(app) -> dict:
    bundle, _, _ = rw.stocked_bundle(get_db(), app.world.user_ids["verifier"])
    return {"order_id": rw.order(get_db(), bundle["id"], 1)["public_id"]}


@pytest.fixture(scope="session")
def ordered(snapshots, seeded):
    """The seeded world with a stocked bundle and one reserved tonne, built once."""
    return snapshots.extend("push_api.ordered", reserve_one_tonne, on=seeded)


@pytest.fixture
def app(request, instance, seeded, ordered):
    """Tests that take `order_id` start from the world with the order in it."""
    start = ordered if "order_id" in request.fixturenames else seeded
    return start.app(instance)


@pytest.fixture
def order_id(world) -> str:
    return world.built["order_id"]


def token_for(app, code: str) -> str:
    with app.test_request_context():
        return household_token(code)


BAD_SUBSCRIPTIONS = {
    "http endpoint": (subscription(endpoint="http://push.example.net/x1234"), "validation_failed"),
    "loopback https": (subscription(endpoint="https://127.0.0.1/x1234"), "validation_failed"),
    "private address": (subscription(endpoint="https://10.1.2.3/push/x"), "validation_failed"),
    "credentials in URL": (
        subscription(endpoint="https://u:p@push.example.net/x"),
        "validation_failed",
    ),
    "not a URL": (subscription(endpoint="javascript:alert(1)"), "validation_failed"),
    "short p256dh": (subscription(keys={"p256dh": b64url(b"\x04" + os.urandom(31))}), None),
    "p256dh off the curve": (
        subscription(keys={"p256dh": b64url(b"\x04" + b"\x01" * 64)}),
        "validation_failed",
    ),
    "p256dh not base64url": (subscription(keys={"p256dh": "B" * 86 + "+"}), "validation_failed"),
    "auth of 15 bytes": (subscription(keys={"auth": b64url(os.urandom(15))}), None),
    "auth of 32 bytes": (subscription(keys={"auth": b64url(os.urandom(32))}), None),
    "no keys": ({"endpoint": "https://push.example.net/send/abc123"}, "validation_failed"),
    "extra field": (subscription(extra=1), "validation_failed"),
}


@pytest.mark.parametrize("case", BAD_SUBSCRIPTIONS, ids=str)
def test_malformed_subscriptions_are_refused(client, db, order_id, case):
    sub, code = BAD_SUBSCRIPTIONS[case]
    response = client.post(
        "/api/v1/push/subscriptions", json={"subscription": sub, "order": order_id}
    )
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == (code or "validation_failed")
    assert set(response.json["error"]) >= {"status", "code", "message"}
    assert db.execute("SELECT count(*) FROM push_subscriptions").fetchone()[0] == 0


def test_bad_bodies_get_the_one_error_shape(client, db):
    url = "/api/v1/push/subscriptions"
    cases = [
        (client.post(url, data="{", content_type="application/json"), 400, "invalid_json"),
        (client.post(url, data="x", content_type="text/plain"), 415, "unsupported_media_type"),
        (client.post(url, json=[]), 422, "validation_failed"),
        (client.delete(url, json={"endpoint": 5}), 422, "validation_failed"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json["error"]["code"]) == (status, code)
    assert db.execute("SELECT count(*) FROM push_subscriptions").fetchone()[0] == 0


def test_unknown_and_misdirected_kinds_are_refused(client, db, order_id):
    for kinds in (["payment_arrived"], ["money_sent"], [], ["certificate_ready"] * 2):
        response = client.post(
            "/api/v1/push/subscriptions",
            json={"subscription": subscription(), "order": order_id, "kinds": kinds},
        )
        assert response.status_code == 422, (kinds, response.json)
    quiet = client.post(
        "/api/v1/push/subscriptions",
        json={
            "subscription": subscription(),
            "order": order_id,
            "quiet_hours": {"start": "22:00", "end": "06:00"},
        },
    )
    assert quiet.status_code == 422
    assert quiet.json["error"]["details"] == [
        {"field": "quiet_hours", "problem": "are for households only"}
    ]
    assert db.execute("SELECT count(*) FROM push_subscriptions").fetchone()[0] == 0


def test_someone_elses_household_or_order_is_refused(app, client, db, world):
    url = "/api/v1/push/subscriptions"
    mine = token_for(app, world.household_a)
    cases = [
        ({"household": world.household_c, "token": mine}, 403, "household_not_verified"),
        ({"household": world.household_a}, 403, "household_not_verified"),
        ({"household": world.household_a, "token": mine[:-2] + "xx"}, 403, None),
        ({"order": "x" * 24}, 404, "not_found"),
        ({"order": "x" * 24, "household": world.household_a, "token": mine}, 422, None),
        ({"token": mine}, 422, "validation_failed"),
        ({}, 401, "unauthorized"),
    ]
    for owner, status, code in cases:
        response = client.post(url, json={"subscription": subscription()} | owner)
        assert response.status_code == status, (owner, response.json)
        if code:
            assert response.json["error"]["code"] == code
    admin = client.post(
        url, json={"subscription": subscription()}, headers=bearer(world.tokens["admin"])
    )
    assert (admin.status_code, admin.json["error"]["code"]) == (403, "forbidden")
    assert db.execute("SELECT count(*) FROM push_subscriptions").fetchone()[0] == 0


def test_an_expired_household_token_is_refused(app, client, db, world):
    token = token_for(app, world.household_a)
    app.config["PUSH_HOUSEHOLD_TOKEN_SECONDS"] = -1
    response = client.post(
        "/api/v1/push/subscriptions",
        json={"subscription": subscription(), "household": world.household_a, "token": token},
    )
    assert (response.status_code, response.json["error"]["code"]) == (
        403,
        "household_not_verified",
    )


def test_unsubscribing_needs_the_same_owner(app, client, db, world, order_id):
    sub = subscription()
    made = client.post("/api/v1/push/subscriptions", json={"subscription": sub, "order": order_id})
    assert made.status_code == 201
    token = token_for(app, world.household_a)
    other = client.delete(
        "/api/v1/push/subscriptions",
        json={"endpoint": sub["endpoint"], "household": world.household_a, "token": token},
    )
    assert (other.status_code, other.json) == (200, {"removed": 0})
    assert db.execute("SELECT count(*) FROM push_subscriptions").fetchone()[0] == 1


def test_the_public_key_is_the_instance_key_and_stays(app, client, instance):
    from server import create_app

    first = client.get("/api/v1/push/key").json["public_key"]
    assert len(base64.urlsafe_b64decode(first + "=")) == 65
    assert (instance / "vapid_private.pem").stat().st_mode & 0o777 == 0o600
    again = create_app({"INSTANCE_PATH": str(instance)}).test_client().get("/api/v1/push/key")
    assert again.json["public_key"] == first


def test_a_farmer_past_the_second_factor_subscribes_from_the_plate_page(client, db, world):
    code = world.household_a
    url = "/api/v1/push/subscriptions"
    before = client.post(url, json={"subscription": subscription(), "household": code})
    assert (before.status_code, before.json["error"]["code"]) == (403, "household_not_verified")
    assert 'id="push-enable"' not in client.get(f"/h/{code}").get_data(as_text=True)

    csrf = client.get("/api/v1/auth/csrf").json["csrf_token"]
    opened = client.post(
        f"/h/{code}/unlock",
        data={"phone_tail": PHONE[-4:]},
        headers={"X-CSRFToken": csrf},
        follow_redirects=True,
    )
    assert opened.status_code == 200
    page = opened.get_data(as_text=True)
    assert 'id="push-enable"' in page and "开启手机通知" in page
    assert "21:00 至 07:00 不打扰" in page  # the farmer may turn quiet hours off

    forged = client.post(url, json={"subscription": subscription(), "household": code})
    assert (forged.status_code, forged.json["error"]["code"]) == (400, "csrf_failed")
    made = client.post(
        url,
        json={"subscription": subscription(), "household": code, "kinds": ["money_sent"]},
        headers={"X-CSRFToken": csrf},
    )
    assert made.status_code == 201, made.json
    assert made.json["subscription"]["owner"] == "household"
    other = client.post(
        url,
        json={"subscription": subscription(), "household": world.household_c},
        headers={"X-CSRFToken": csrf},
    )
    assert other.status_code == 403
    assert db.execute("SELECT count(*) FROM push_subscriptions").fetchone()[0] == 1


def test_the_order_page_offers_notification_until_the_certificate(client, order_id):
    page = client.get(f"/orders/{order_id}").get_data(as_text=True)
    assert 'id="push-enable"' in page and "证书生成时通知我" in page
    assert "data-csrf" not in page  # the order id proves the owner; no session needed
    assert "不打扰" not in page  # buyers asked for the notice: no quiet hours
    assert 'import { enablePush, pushPermission } from "/app/js/push.js"' in page


@pytest.mark.parametrize("setting", ["21:00", "25:00-07:00", "07:00-07:00", "night"])
def test_a_malformed_quiet_hours_setting_stops_the_app_at_start(instance, setting):
    from server import create_app

    with pytest.raises(ValueError, match="PUSH_QUIET_HOURS"):
        create_app({"INSTANCE_PATH": str(instance), "PUSH_QUIET_HOURS": setting})


def test_quiet_hours_can_be_switched_off_for_the_whole_county(instance):
    from server import create_app

    create_app({"INSTANCE_PATH": str(instance), "PUSH_QUIET_HOURS": ""})
