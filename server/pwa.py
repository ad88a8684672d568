"""The offline-first web app's files (`pwa/`), served from `/app/`."""

import base64
import hashlib
import os
import re
from pathlib import Path

from flask import Blueprint, Response, abort, redirect, request, send_from_directory
from werkzeug.security import safe_join

from server import tiles
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


# The service worker's source says `const VERSION = "dev";`; the app serves it with a hash of
# every shell file instead, so any change to the shell is a new worker and a new cache: phones
# are offered the update, and no release can forget to bump a number.
VERSION_LINE = 'const VERSION = "dev";'
_LISTS = re.compile(r"const (?:SHELL|OPTIONAL) = \[(.*?)\];", re.S)
_versions: dict[tuple, str] = {}


def _shell_files() -> list[tuple[str, Path]]:
    """The files sw.js precaches (its SHELL and OPTIONAL lists) and sw.js itself, by URL."""
    source = (PWA_ROOT / "sw.js").read_text()
    urls = [url for block in _LISTS.findall(source) for url in re.findall(r'"(/app/[^"]*)"', block)]
    files = [("/app/sw.js", PWA_ROOT / "sw.js")]
    for url in urls:
        name = url.removeprefix("/app/")
        path = JSQR if name == "vendor/jsqr.js" else PWA_ROOT / (name or "index.html")
        files.append((url, path))
    return files


def shell_version() -> str:
    """A hash of the shell files' names and bytes (12 hex digits), recomputed when one changes."""
    files = _shell_files()
    stamp = tuple(
        (url, st.st_mtime_ns, st.st_size) if (st := _stat(path)) else (url, None, None)
        for url, path in files
    )
    stamp += ((str(PWA_ROOT), tiles.template()),)  # the folder, and the tile service the page names
    if stamp not in _versions:
        digest = hashlib.sha256()
        digest.update(f"tiles={tiles.template() or ''}".encode() + b"\0")
        for url, path in files:
            digest.update(url.encode() + b"\0")
            digest.update(path.read_bytes() if path.is_file() else b"(missing)")
            digest.update(b"\0")
        _versions.clear()
        _versions[stamp] = digest.hexdigest()[:12]
    return _versions[stamp]


def _stat(path: Path):
    try:
        return path.stat()
    except OSError:
        return None


def _lean(response):
    """Drop what a shell file does not need on the wire: the ETag revalidates it."""
    if response.mimetype != "text/html":
        response.headers["Content-Security-Policy"] = SUBRESOURCE_POLICY
    for name in ("Content-Disposition", "Expires", "Last-Modified", "Accept-Ranges"):
        response.headers.pop(name, None)
    response.headers["Cache-Control"] = "no-cache"  # the same as max-age=0 with it, shorter
    return response


def _short_etag(folder: Path, filename: str) -> str | bool:
    """A 10-character validator from the file's change time and size (the default one is
    some 35 characters, in each of a first visit's 70 answers); True lets Flask make it."""
    path = safe_join(str(folder), filename)
    try:
        st = os.stat(path) if path else None
    except OSError:
        st = None
    if st is None:
        return True
    digest = hashlib.blake2b(f"{st.st_mtime_ns}-{st.st_size}".encode(), digest_size=6)
    return base64.urlsafe_b64encode(digest.digest()).decode()


@bp.get("/calculator")
@allow(PUBLIC)
def calculator():
    """The public carbon calculator (works offline after the first visit)."""
    return send_from_directory(PWA_ROOT, "calculator.html", max_age=0)


@bp.get("/app/")
@allow(PUBLIC)
def app_shell():
    """The measurer app's shell page; every screen is a `#/…` route inside it. It tells the
    app whether the county has map tiles (part of the shell's version, so a phone learns)."""
    if not tiles.template():
        return send_from_directory(PWA_ROOT, "index.html", max_age=0)
    page = (PWA_ROOT / "index.html").read_text()
    meta = f'  <meta name="sipang-tiles" content="{tiles.URL}">\n</head>'
    response = Response(page.replace("</head>", meta, 1), mimetype="text/html")
    response.set_etag(f"{shell_version()}-page")
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)


@bp.get("/app/tiles/<int:z>/<int:x>/<int:y>.png")
@allow(PUBLIC)
def map_tile(z: int, x: int, y: int):
    """One of the county's map tiles (server/tiles.py); 404 when no tile service is set."""
    data, kind = tiles.tile(z, x, y)
    response = _lean(Response(data, mimetype=kind))
    response.headers["Cache-Control"] = "public, max-age=604800"  # a tile changes rarely
    return response


@bp.get("/app")
@allow(PUBLIC)
def app_shell_bare():
    """`/app` → `/app/`, inside the service worker's scope, so it opens offline too."""
    return redirect("/app/", code=308)


@bp.get("/app/sw.js")
@allow(PUBLIC)
def service_worker():
    """The service worker with its VERSION (a hash of the shell), always revalidated so a new
    version is found on the next visit."""
    version = shell_version()
    source = (PWA_ROOT / "sw.js").read_text()
    if VERSION_LINE not in source:
        raise RuntimeError(f"pwa/sw.js must hold the line {VERSION_LINE!r}")
    body = source.replace(VERSION_LINE, f'const VERSION = "{version}";', 1)
    response = Response(body, mimetype="text/javascript")
    response.set_etag(version)
    response.headers["Service-Worker-Allowed"] = "/app/"
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)


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
    etag = _short_etag(PWA_ROOT, filename)
    return _lean(send_from_directory(PWA_ROOT, filename, max_age=0, etag=etag))
