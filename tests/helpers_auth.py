"""Signing in, as the tests do it everywhere: through the JSON API or the sign-in form."""

import re

from tests.conftest import PASSWORD

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client) -> str:
    """A fresh CSRF token for the client's session (GET /api/v1/auth/csrf)."""
    response = client.get("/api/v1/auth/csrf")
    assert response.status_code == 200
    return response.json["csrf_token"]


def sign_in(client, username: str, password: str = PASSWORD, **kwargs):
    """POST the API login with a fresh CSRF token; the response, whatever it says."""
    return client.post(
        "/api/v1/auth/login",
        json={"username": username, "password": password},
        headers={"X-CSRFToken": csrf_token(client)},
        **kwargs,
    )


def signed_in(client, username: str) -> None:
    """Sign `username` in through the API (it must work); the cookie stays on the client."""
    response = sign_in(client, username)
    assert response.status_code == 200, response.get_data(as_text=True)


def form_token(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no csrf_token field"
    return found.group(1)


def sign_in_form(client, role: str):
    """Sign in as `role` through /login; returns the redirect response."""
    token = form_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": role, "password": PASSWORD, "csrf_token": token})


def sign_in_page(client, username: str) -> str:
    """Sign in through the /login form; the CSRF token the session's API calls need."""
    sign_in_form(client, username)
    return csrf_token(client)
