"""The offline-first web app's files (`pwa/`), served from `/app/`."""

from pathlib import Path

from flask import Blueprint, abort, redirect, send_from_directory

from server.access import PUBLIC, allow

REPO_ROOT = Path(__file__).resolve().parent.parent
PWA_ROOT = REPO_ROOT / "pwa"
JSQR = REPO_ROOT / "node_modules" / "jsqr" / "dist" / "jsQR.js"  # from npm, never committed

bp = Blueprint("pwa", __name__)

# A script, style, catalogue or icon is not a document: the page's own policy governs what it
# may do, so a subresource carries the tightest policy in a few bytes instead of the page's
# (the app's first load is some 70 responses, many of them 304s, over 2G). The service
# worker's script keeps the full policy: it is the worker's own.
SUBRESOURCE_POLICY = (
    "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'"
)


def _lean(response):
    """Drop what a shell file does not need on the wire: the ETag revalidates it."""
    if response.mimetype != "text/html":
        response.headers["Content-Security-Policy"] = SUBRESOURCE_POLICY
    for name in ("Content-Disposition", "Expires", "Last-Modified"):
        response.headers.pop(name, None)
    return response


@bp.get("/calculator")
@allow(PUBLIC)
def calculator():
    """The public carbon calculator (works offline after the first visit)."""
    return send_from_directory(PWA_ROOT, "calculator.html", max_age=0)


@bp.get("/app/")
@allow(PUBLIC)
def app_shell():
    """The measurer app's shell page; every screen is a `#/…` route inside it."""
    return send_from_directory(PWA_ROOT, "index.html", max_age=0)


@bp.get("/app")
@allow(PUBLIC)
def app_shell_bare():
    """`/app` → `/app/`, inside the service worker's scope, so it opens offline too."""
    return redirect("/app/", code=308)


@bp.get("/app/sw.js")
@allow(PUBLIC)
def service_worker():
    """The service worker, always revalidated so a new version is found on the next visit."""
    response = send_from_directory(PWA_ROOT, "sw.js", max_age=0)
    response.headers["Service-Worker-Allowed"] = "/app/"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/app/vendor/jsqr.js")
@allow(PUBLIC)
def jsqr():
    """The jsQR decoder from npm, for phones without BarcodeDetector (404 until installed)."""
    if not JSQR.is_file():
        abort(404)
    return _lean(send_from_directory(JSQR.parent, JSQR.name, max_age=0, mimetype="text/javascript"))


@bp.get("/app/<path:filename>")
@allow(PUBLIC)
def app_file(filename: str):
    """The app's scripts, styles and images."""
    return _lean(send_from_directory(PWA_ROOT, filename, max_age=0))
