"""What every response carries for the browser's protection, and who the client is behind
the configured proxies.

- `PROXY_HOPS` reverse proxies are trusted: the client address, scheme and host come from
  that many `X-Forwarded-*` entries (werkzeug's ProxyFix) and no more, so a client cannot
  pick its own address by sending the header itself, and every per-address limit sees the
  client, not nginx.
- Pages a shared cache keeps render their forms' CSRF token only for a browser that holds a
  session (server/form_tokens.py).
- Every response: a Content-Security-Policy (scripts from this site only, plus inline
  scripts carrying the request's nonce; no framing), `X-Content-Type-Options: nosniff`,
  `Referrer-Policy` and `Permissions-Policy` (camera and location for this site only);
  `Strict-Transport-Security` on HTTPS requests when HSTS_SECONDS is set.
"""

import secrets

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from server import form_tokens

# Styles allow inline attributes: bar widths and map pins are set in `style="..."`. Images
# and media allow blob: and data: for photos the phone has not sent yet and QR images.
POLICY = (
    "default-src 'self'; "
    "script-src 'self' 'nonce-{nonce}'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; "
    "media-src 'self' blob:; "
    "connect-src 'self'; "
    "worker-src 'self'; "
    "manifest-src 'self'; "
    "object-src 'none'; "
    "base-uri 'self'; "
    "frame-ancestors 'none'"
)
PERMISSIONS = "camera=(self), geolocation=(self), microphone=(), payment=()"


def csp_nonce() -> str:
    """This request's script nonce (for `<script nonce="{{ csp_nonce() }}">` in templates)."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def add_headers(response: Response) -> Response:
    """Set the browser protections on one response (kept when a view set its own)."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", POLICY.format(nonce=csp_nonce()))
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", PERMISSIONS)
    from flask import current_app

    seconds = int(current_app.config.get("HSTS_SECONDS") or 0)
    if seconds > 0 and request.is_secure:
        headers.setdefault("Strict-Transport-Security", f"max-age={seconds}")
    return response


def init_app(app: Flask) -> None:
    """Trust PROXY_HOPS proxies and add the headers to every response."""
    hops = int(app.config.get("PROXY_HOPS") or 0)
    if hops < 0:
        raise ValueError("PROXY_HOPS must be 0 or more")
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.after_request(add_headers)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    form_tokens.init_app(app)
