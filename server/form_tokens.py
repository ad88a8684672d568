"""CSRF tokens for the forms of pages a shared cache keeps: the door plate and the bundle page.

Such a page is the same bytes for every anonymous reader, so nginx's micro-cache can make it
once a second for all of them (deploy/nginx.conf). A session-bound CSRF token in it would set a
session cookie on every GET and keep the page out of any shared cache, and would hand one
reader's token to the next. So:

- `form_token()` in a template gives the session's token only to a browser that already holds
  a session cookie (its request bypasses the shared cache, and the page is marked private);
  to an anonymous reader it gives "" and sets no cookie;
- `static/form_token.js` fetches a token from `GET /api/v1/auth/csrf` (never cached) when such
  a form is about to be used and fills it in, with a fresh `request_id` where the form has one;
- a browser without scripts posts the form without a token: `hand_out_token()` marks the
  answer, which shows the same form again with a token (private, never stored), and the
  second click goes through.

The check itself is unchanged: Flask-WTF's session-bound token on every cookie write
(server/identity.py), so a cross-site post still does nothing.
"""

from flask import Flask, current_app, g, request
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response

AGAIN = "页面已更新，请再点一次提交。"


def personal() -> bool:
    """Whether this response is for one browser only: it holds a session cookie, or it is
    being handed a token after posting a form without one."""
    return g.get("hand_out_token", False) or (
        current_app.config["SESSION_COOKIE_NAME"] in request.cookies
    )


def form_token() -> str:
    """The session's CSRF token for a form, or "" for an anonymous reader (the page's script
    fetches one when the form is used)."""
    if not personal():
        return ""
    g.form_token_given = True
    return generate_csrf()


def hand_out_token() -> None:
    """Render this request's forms with a token (the answer to a form posted without one)."""
    g.hand_out_token = True


def _keep_private(response: Response) -> Response:
    """A response carrying a session's token is for that browser alone."""
    if g.get("form_token_given") and "private" not in response.headers.get("Cache-Control", ""):
        response.headers["Cache-Control"] = "private, no-cache"
    return response


def init_app(app: Flask) -> None:
    """`form_token()` in templates, and responses carrying one kept out of shared caches."""
    app.jinja_env.globals["form_token"] = form_token
    app.after_request(_keep_private)
