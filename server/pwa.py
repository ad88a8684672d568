"""The offline-first web app's files (`pwa/`), served from `/app/`."""

from pathlib import Path

from flask import Blueprint, send_from_directory

from server.access import PUBLIC, allow

PWA_ROOT = Path(__file__).resolve().parent.parent / "pwa"

bp = Blueprint("pwa", __name__)


@bp.get("/calculator")
@allow(PUBLIC)
def calculator():
    """The public carbon calculator (works offline after the first visit)."""
    return send_from_directory(PWA_ROOT, "calculator.html", max_age=0)


@bp.get("/app/<path:filename>")
@allow(PUBLIC)
def app_file(filename: str):
    """The app's scripts, styles and images."""
    return send_from_directory(PWA_ROOT, filename, max_age=0)
