"""Signing in and out: sessions with CSRF, the HTML form, rate limits, bearer tokens."""

import hashlib
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from conftest import PASSWORD, bearer

from server import create_app, users
from server.settings import defaults
from tests.helpers_auth import csrf_token, form_token, sign_in

WRONG = "not the password"
NEW_COUNTY = {"code": "330327", "name": "苍南县"}


def from_address(number: int) -> dict:
    return {"environ_base": {"REMOTE_ADDR": f"10.0.0.{number}"}}


def error_of(response) -> dict:
    return response.json["error"]


def test_session_login_needs_a_csrf_token(client, db):
    response = client.post("/api/v1/auth/login", json={"username": "admin", "password": PASSWORD})

    assert response.status_code == 400
    assert error_of(response)["code"] == "csrf_failed"
    assert client.get("/api/v1/auth/me").status_code == 401
    assert [r["action"] for r in db["audit_log"].rows_where("action = 'session.started'")] == []


def test_session_login_sets_a_httponly_samesite_cookie(client, world, db):
    response = sign_in(client, "admin")

    assert response.status_code == 200
    assert response.json["user"]["username"] == "admin"
    assert response.json["user"]["role"] == "admin"
    assert "password_hash" not in response.json["user"]
    assert response.json["csrf_token"]
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert cookie.http_only
    assert cookie.same_site == "Lax"
    set_cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in set_cookie
    assert "SameSite=Lax" in set_cookie
    started = list(db["audit_log"].rows_where("action = 'session.started'"))
    assert [row["subject"] for row in started] == [f"user:{world.user_ids['admin']}"]


def test_me_after_session_login(client, world):
    assert client.get("/api/v1/auth/me").status_code == 401
    sign_in(client, "bureau")

    response = client.get("/api/v1/auth/me")

    assert response.status_code == 200
    assert response.json == {
        "auth": "session",
        "device": None,
        "user": {
            "active": True,
            "county_code": "360423",
            "display_name": "bureau 用户",
            "id": world.user_ids["bureau"],
            "organisation": None,
            "role": "bureau",
            "username": "bureau",
            "village_code": None,
        },
    }


def test_cookie_write_without_csrf_header_is_refused(client, db):
    sign_in(client, "admin")

    response = client.post("/api/v1/counties", json=NEW_COUNTY)

    assert response.status_code == 400
    assert error_of(response)["code"] == "csrf_failed"
    assert list(db["counties"].rows_where("code = ?", ["330327"])) == []


def test_cookie_write_with_a_forged_csrf_header_is_refused(client, db):
    sign_in(client, "admin")

    response = client.post(
        "/api/v1/counties", json=NEW_COUNTY, headers={"X-CSRFToken": "forged.token.value"}
    )

    assert response.status_code == 400
    assert error_of(response)["code"] == "csrf_failed"
    assert list(db["counties"].rows_where("code = ?", ["330327"])) == []


def test_cookie_write_with_csrf_header_succeeds(client, db):
    token = sign_in(client, "admin").json["csrf_token"]

    response = client.post("/api/v1/counties", json=NEW_COUNTY, headers={"X-CSRFToken": token})

    assert response.status_code == 201
    assert response.json == {"county": NEW_COUNTY}
    assert [r["name"] for r in db["counties"].rows_where("code = ?", ["330327"])] == ["苍南县"]


def test_csrf_token_from_csrf_route_works_for_a_signed_in_session(client, db):
    sign_in(client, "admin")

    response = client.post(
        "/api/v1/counties", json=NEW_COUNTY, headers={"X-CSRFToken": csrf_token(client)}
    )

    assert response.status_code == 201
    assert db["counties"].count == 3


def test_bearer_token_writes_need_no_csrf(client, world, db):
    response = client.post(
        "/api/v1/counties", json=NEW_COUNTY, headers=bearer(world.tokens["admin"])
    )

    assert response.status_code == 201
    assert response.json == {"county": NEW_COUNTY}
    assert [r["name"] for r in db["counties"].rows_where("code = ?", ["330327"])] == ["苍南县"]


def test_logout_ends_the_session(client, world, db):
    token = sign_in(client, "admin").json["csrf_token"]

    response = client.post("/api/v1/auth/logout", headers={"X-CSRFToken": token})

    assert response.status_code == 200
    assert response.json == {"signed_out": True}
    me = client.get("/api/v1/auth/me")
    assert me.status_code == 401
    assert error_of(me)["code"] == "unauthorized"
    ended = list(db["audit_log"].rows_where("action = 'session.ended'"))
    assert [row["subject"] for row in ended] == [f"user:{world.user_ids['admin']}"]


def test_logout_without_csrf_keeps_the_session(client):
    sign_in(client, "admin")

    response = client.post("/api/v1/auth/logout")

    assert response.status_code == 400
    assert error_of(response)["code"] == "csrf_failed"
    assert client.get("/api/v1/auth/me").status_code == 200


def test_login_form_has_a_csrf_field(client):
    response = client.get("/login")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert '<form method="post" action="/login">' in html
    assert 'type="hidden" name="csrf_token"' in html
    assert form_token(html)
    assert 'name="username"' in html
    assert 'name="password" type="password"' in html


def test_login_form_signs_in_and_redirects_home(client):
    token = form_token(client.get("/login").get_data(as_text=True))

    response = client.post(
        "/login", data={"csrf_token": token, "username": "finance", "password": PASSWORD}
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/finance"  # each role lands on its own home
    home = client.get("/finance")
    assert home.status_code == 200
    html = home.get_data(as_text=True)
    assert "finance 用户</span> · 财务" in html  # the role's name in Chinese
    assert 'action="/logout"' in html
    assert client.get("/api/v1/auth/me").json["user"]["username"] == "finance"


def test_login_form_wrong_password_rerenders_with_an_error(client):
    token = form_token(client.get("/login").get_data(as_text=True))

    response = client.post(
        "/login", data={"csrf_token": token, "username": "finance", "password": WRONG}
    )

    assert response.status_code == 401
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert 'role="alert"' in html
    assert "Wrong username or password." in html
    assert form_token(html)
    assert client.get("/api/v1/auth/me").status_code == 401


def test_login_form_without_csrf_token_is_refused(client, db):
    response = client.post("/login", data={"username": "finance", "password": PASSWORD})

    assert response.status_code == 400
    assert client.get("/api/v1/auth/me").status_code == 401
    assert list(db["audit_log"].rows_where("action = 'session.started'")) == []


def test_logout_form_ends_the_session(client):
    token = form_token(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"csrf_token": token, "username": "finance", "password": PASSWORD})
    token = form_token(client.get("/").get_data(as_text=True))

    response = client.post("/logout", data={"csrf_token": token})

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert client.get("/api/v1/auth/me").status_code == 401


def test_wrong_password_and_unknown_user_look_the_same(client):
    wrong_password = sign_in(client, "admin", WRONG)
    unknown_user = sign_in(client, "nobody", PASSWORD)

    assert wrong_password.status_code == unknown_user.status_code == 401
    assert error_of(wrong_password) == error_of(unknown_user)
    assert error_of(wrong_password) == {
        "status": 401,
        "code": "invalid_credentials",
        "message": "Wrong username or password.",
        "details": None,
    }
    assert client.get("/api/v1/auth/me").status_code == 401


def test_wrong_passwords_lock_the_guesser_not_the_account(app):
    app.config["LOGIN_RATE_LIMIT"] = "10 per minute"
    guesser, owner = app.test_client(), app.test_client()
    for attempt in range(10):
        response = sign_in(guesser, "finance", WRONG, **from_address(1))
        assert response.status_code == 401, attempt

    response = sign_in(guesser, "finance", PASSWORD, **from_address(1))

    assert response.status_code == 429
    assert error_of(response)["status"] == 429
    assert error_of(response)["code"] == "rate_limited"
    assert error_of(response)["message"]
    assert int(response.headers["Retry-After"]) > 0
    assert guesser.get("/api/v1/auth/me").status_code == 401
    # the account's owner, from their own address, still signs in
    assert sign_in(owner, "finance", PASSWORD, **from_address(2)).status_code == 200


def test_login_rate_limit_is_shared_by_every_password_route(client):
    """API login, token exchange and the HTML form draw on one allowance per username."""
    for attempt in range(10):
        address = from_address(1)
        if attempt % 3 == 0:
            response = sign_in(client, "finance", WRONG, **address)
        elif attempt % 3 == 1:
            response = client.post(
                "/api/v1/auth/tokens", json={"username": "finance", "password": WRONG}, **address
            )
        else:
            token = form_token(client.get("/login").get_data(as_text=True))
            response = client.post(
                "/login",
                data={"csrf_token": token, "username": "finance", "password": WRONG},
                **address,
            )
        assert response.status_code == 401, attempt

    response = client.post(
        "/api/v1/auth/tokens",
        json={"username": "finance", "password": PASSWORD},
        **from_address(1),
    )

    assert response.status_code == 429
    assert error_of(response)["code"] == "rate_limited"
    assert "Retry-After" in response.headers


def test_login_rate_limit_per_address_follows_the_setting(tmp_path: Path):
    app = create_app(
        {"INSTANCE_PATH": str(tmp_path / "instance"), "LOGIN_RATE_LIMIT": "3 per minute"}
    )
    client = app.test_client()
    for name in ("nobody1", "nobody2", "nobody3"):
        assert sign_in(client, name, WRONG).status_code == 401

    response = sign_in(client, "nobody4", WRONG)

    assert response.status_code == 429
    assert error_of(response)["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0


def test_bearer_token_from_password(client, world, db):
    response = client.post(
        "/api/v1/auth/tokens", json={"username": "finance", "password": PASSWORD, "label": "cli"}
    )

    assert response.status_code == 201
    token = response.json["token"]
    assert response.json["token_type"] == "Bearer"
    assert response.json["user"]["username"] == "finance"
    me = client.get("/api/v1/auth/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json["auth"] == "token"
    assert me.json["user"]["id"] == world.user_ids["finance"]
    rows = list(db["api_tokens"].rows_where("label = 'cli'"))
    assert len(rows) == 1
    assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert rows[0]["user_id"] == world.user_ids["finance"]
    assert rows[0]["expires_at"] is not None
    assert rows[0]["revoked_at"] is None
    assert token not in str(list(db["api_tokens"].rows))


def test_revoking_the_current_token(client, db):
    token = client.post(
        "/api/v1/auth/tokens", json={"username": "finance", "password": PASSWORD, "label": "cli"}
    ).json["token"]

    response = client.delete("/api/v1/auth/tokens/current", headers=bearer(token))

    assert response.status_code == 200
    assert response.json == {"revoked": True}
    again = client.get("/api/v1/auth/me", headers=bearer(token))
    assert again.status_code == 401
    assert error_of(again)["code"] == "invalid_token"
    assert [
        row["revoked_at"] is not None for row in db["api_tokens"].rows_where("label = 'cli'")
    ] == [True]


def test_revoking_the_current_token_needs_a_token(client):
    token = sign_in(client, "admin").json["csrf_token"]

    response = client.delete("/api/v1/auth/tokens/current", headers={"X-CSRFToken": token})

    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_request"
    assert client.get("/api/v1/auth/me").status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer garbage",
        "Bearer sp_" + "A" * 43,
        "Bearer ",
        "Bearer",
        "Basic YWRtaW46Y29ycmVjdCBob3JzZSBiYXR0ZXJ5",
        "Token sp_abc",
        "",
    ],
)
def test_bad_authorization_header_is_refused(client, authorization):
    response = client.get("/api/v1/auth/me", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_token"


def test_bad_authorization_header_is_refused_even_with_a_session(client):
    sign_in(client, "admin")

    response = client.get("/api/v1/auth/me", headers={"Authorization": "Bearer garbage"})

    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_token"


def test_bearer_scheme_is_required_in_any_case(client, world):
    """A token is only accepted after the word Bearer (any case)."""
    response = client.get(
        "/api/v1/auth/me", headers={"Authorization": f"bearer {world.tokens['finance']}"}
    )
    assert response.status_code == 200
    response = client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Basic {world.tokens['finance']}"}
    )
    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_token"


def test_disabling_a_user_ends_its_sessions_and_tokens(app, client, world, db):
    finance_id = world.user_ids["finance"]
    sign_in(client, "finance")
    assert client.get("/api/v1/auth/me").status_code == 200

    response = client.post(
        f"/api/v1/users/{finance_id}/disable", headers=bearer(world.tokens["admin"])
    )

    assert response.status_code == 200
    assert response.json["user"]["active"] is False
    session_me = client.get("/api/v1/auth/me")
    assert session_me.status_code == 401
    assert error_of(session_me)["code"] == "unauthorized"
    token_me = client.get("/api/v1/auth/me", headers=bearer(world.tokens["finance"]))
    assert token_me.status_code == 401
    assert error_of(token_me)["code"] == "invalid_token"
    assert error_of(sign_in(app.test_client(), "finance"))["code"] == "invalid_credentials"
    assert db["users"].get(finance_id)["active"] == 0
    tokens = list(db["api_tokens"].rows_where("user_id = ?", [finance_id]))
    assert tokens and all(row["revoked_at"] for row in tokens)
    assert [r["subject"] for r in db["audit_log"].rows_where("action = 'user.disabled'")] == [
        f"user:{finance_id}"
    ]


def test_enabling_a_user_restores_password_login_only(app, client, world, db):
    finance_id = world.user_ids["finance"]
    sign_in(client, "finance")
    admin = bearer(world.tokens["admin"])
    client.post(f"/api/v1/users/{finance_id}/disable", headers=admin)

    response = client.post(f"/api/v1/users/{finance_id}/enable", headers=admin)

    assert response.status_code == 200
    assert response.json["user"]["active"] is True
    assert client.get("/api/v1/auth/me").status_code == 401  # the old session stays ended
    old_token = client.get("/api/v1/auth/me", headers=bearer(world.tokens["finance"]))
    assert old_token.status_code == 401
    fresh = app.test_client()
    assert sign_in(fresh, "finance").status_code == 200
    assert fresh.get("/api/v1/auth/me").json["user"]["id"] == finance_id
    assert db["users"].get(finance_id)["active"] == 1


def test_admin_cannot_disable_itself(client, world, db):
    admin_id = world.user_ids["admin"]

    response = client.post(
        f"/api/v1/users/{admin_id}/disable", headers=bearer(world.tokens["admin"])
    )

    assert response.status_code == 409
    assert error_of(response)["code"] == "conflict"
    assert db["users"].get(admin_id)["active"] == 1


def test_measurer_without_a_password_gets_the_same_401(client):
    response = sign_in(client, "measurer", PASSWORD)

    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_credentials"


def test_measurer_with_a_password_must_use_a_device(client, world, db):
    db["users"].update(world.measurer_id, {"password_hash": PasswordHasher().hash(PASSWORD)})
    db.conn.commit()

    login = sign_in(client, "measurer")
    token = client.post("/api/v1/auth/tokens", json={"username": "measurer", "password": PASSWORD})

    assert login.status_code == 403
    assert error_of(login)["code"] == "device_required"
    assert token.status_code == 403
    assert error_of(token)["code"] == "device_required"
    assert client.get("/api/v1/auth/me").status_code == 401
    assert (
        list(db["api_tokens"].rows_where("user_id = ? AND device_id IS NULL", [world.measurer_id]))
        == []
    )


def test_measurer_device_token_identifies_the_device(client, world):
    response = client.get("/api/v1/auth/me", headers=bearer(world.tokens["measurer"]))

    assert response.status_code == 200
    assert response.json["auth"] == "token"
    assert response.json["device"] == {"id": world.device_id, "label": "test phone"}
    assert response.json["user"]["village_code"] == world.village_a


def test_passwords_are_stored_as_argon2_hashes(client, db):
    rows = list(db["users"].rows_where(order_by="id"))

    staff = [row for row in rows if row["role"] != "measurer"]
    assert len(staff) == 5
    for row in staff:
        assert row["password_hash"].startswith("$argon2")
        assert PASSWORD not in row["password_hash"]
        assert PasswordHasher().verify(row["password_hash"], PASSWORD)
    assert [row["password_hash"] for row in rows if row["role"] == "measurer"] == [None]


def test_users_created_through_the_api_get_argon2_hashes(client, world, db):
    response = client.post(
        "/api/v1/users",
        json={
            "username": "finance.li",
            "display_name": "李会计",
            "role": "finance",
            "password": PASSWORD,
        },
        headers=bearer(world.tokens["admin"]),
    )

    assert response.status_code == 201
    assert response.json["user"]["username"] == "finance.li"
    assert "password_hash" not in response.json["user"]
    stored = next(db["users"].rows_where("username = 'finance.li'"))
    assert stored["password_hash"].startswith("$argon2")
    assert sign_in(client, "finance.li").status_code == 200


def test_a_new_password_is_hashed_at_the_instance_cost_and_production_asks_rfc_9106s(app, db):
    assert (defaults()["PASSWORD_HASH_TIME_COST"], defaults()["PASSWORD_HASH_MEMORY_KIB"]) == (
        3,
        65536,
    )
    app.config.update(PASSWORD_HASH_TIME_COST=2, PASSWORD_HASH_MEMORY_KIB=16384)
    with app.app_context():
        user = users.create_user(
            db, username="finance.zhao", display_name="赵会计", role="finance", password=PASSWORD
        )
    assert "$m=16384,t=2," in user["password_hash"]
    client = app.test_client()
    assert sign_in(client, "finance.zhao").status_code == 200
