"""Posting the workspace's forms; signing in is tests/helpers_auth.py's (re-exported here for
the workspace tests that import it from this module)."""

from tests.helpers_auth import form_token, sign_in_form

__all__ = ["form_token", "post_form", "sign_in_form"]


def post_form(client, page: str, action: str, data: dict, follow: bool = True):
    """Post a form of `page` (with its CSRF token) to `action`."""
    token = form_token(client.get(page).get_data(as_text=True))
    return client.post(action, data=data | {"csrf_token": token}, follow_redirects=follow)
