"""Signing out ends the session on the server: a copy of the cookie saved before is
refused, while other sessions of the same person go on."""

from tests.helpers_auth import sign_in


def saved_cookie(client) -> str:
    return client.get_cookie("session").value


def test_a_cookie_saved_before_logout_no_longer_works(app):
    browser = app.test_client()
    token = sign_in(browser, "admin").json["csrf_token"]
    copy = saved_cookie(browser)
    thief = app.test_client()
    thief.set_cookie("session", copy)
    assert thief.get("/api/v1/auth/me").status_code == 200  # the copy works while signed in

    assert browser.post("/api/v1/auth/logout", headers={"X-CSRFToken": token}).status_code == 200

    me = thief.get("/api/v1/auth/me")
    assert me.status_code == 401
    assert me.json["error"]["code"] == "unauthorized"


def test_logout_ends_only_that_session(app):
    phone, desk = app.test_client(), app.test_client()
    token = sign_in(phone, "admin").json["csrf_token"]
    sign_in(desk, "admin")

    phone.post("/api/v1/auth/logout", headers={"X-CSRFToken": token})

    assert phone.get("/api/v1/auth/me").status_code == 401
    assert desk.get("/api/v1/auth/me").status_code == 200


def test_a_cookie_without_a_session_id_is_not_a_session(app):
    """A cookie signed with the key but not made by sign-in (no session id) is refused."""
    from flask.sessions import SecureCookieSessionInterface

    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    with app.app_context():
        from server.users import get_user

        user = get_user(app.world.user_ids["admin"])
    forged = serializer.dumps({"user_id": user["id"], "auth_epoch": user["auth_epoch"]})
    client = app.test_client()
    client.set_cookie("session", forged)
    assert client.get("/api/v1/auth/me").status_code == 401
