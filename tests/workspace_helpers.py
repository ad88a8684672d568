"""Signing staff in through the sign-in form, and posting the workspace's forms."""

import re

from tests.conftest import PASSWORD

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no csrf_token field"
    return found.group(1)


def sign_in_form(client, role: str):
    """Sign in as `role` through /login; returns the redirect response."""
    token = form_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": role, "password": PASSWORD, "csrf_token": token})


def post_form(client, page: str, action: str, data: dict, follow: bool = True):
    """Post a form of `page` (with its CSRF token) to `action`."""
    token = form_token(client.get(page).get_data(as_text=True))
    return client.post(action, data=data | {"csrf_token": token}, follow_redirects=follow)
