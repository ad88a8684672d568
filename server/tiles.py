"""The county's map tiles, where a tile service is configured (`MAP_TILE_URL`): fetched by the
server and kept on disk, served from this site (`/app/tiles/<z>/<x>/<y>.png`), so pages and
the phone's service worker treat them as their own and no page names a third-party origin.
Maps place them under their own drawing from coordinates; without the setting, or offline
without a copy, the drawing stands alone."""

import math
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from flask import current_app

from server.errors import ApiError

MAX_ZOOM = 19
MAX_TILE_BYTES = 512 * 1024
MAX_TILES = 16  # per map: a village map at 2G is a few tiles, never a hundred
FETCH_TIMEOUT_S = 10
URL = "/app/tiles/{z}/{x}/{y}.png"


def template() -> str | None:
    """The configured tile URL template (`{z}`, `{x}`, `{y}`), or None."""
    return current_app.config.get("MAP_TILE_URL") or None


def _tile_x(lon: float, zoom: int) -> float:
    return (lon + 180.0) / 360.0 * 2**zoom


def _tile_y(lat: float, zoom: int) -> float:
    lat = max(min(lat, 85.05112878), -85.05112878)
    r = math.radians(lat)
    return (1.0 - math.asinh(math.tan(r)) / math.pi) / 2.0 * 2**zoom


def _lon(x: float, zoom: int) -> float:
    return x / 2**zoom * 360.0 - 180.0


def _lat(y: float, zoom: int) -> float:
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / 2**zoom))))


def images(
    south: float, west: float, north: float, east: float, width: float, height: float
) -> list[dict[str, Any]]:
    """The tiles covering a north-up map box whose edges are these latitudes and longitudes,
    each as {href, x, y, width, height} in the box's pixels (the box is linear in latitude
    and longitude, as the maps drawn here are; at village scale that matches the tiles).
    Empty without a configured tile service."""
    if not template() or not (north > south and east > west and width > 0 and height > 0):
        return []
    per_px = (east - west) / width
    zoom = max(1, min(MAX_ZOOM, round(math.log2(360.0 / (256 * per_px))) + 1))
    while True:
        x0, x1 = int(_tile_x(west, zoom)), int(_tile_x(east, zoom))
        y0, y1 = int(_tile_y(north, zoom)), int(_tile_y(south, zoom))
        if (x1 - x0 + 1) * (y1 - y0 + 1) <= MAX_TILES or zoom == 1:
            break
        zoom -= 1
    sx, sy = width / (east - west), height / (north - south)
    found = []
    for ty in range(y0, y1 + 1):
        for tx in range(x0, x1 + 1):
            left, right = _lon(tx, zoom), _lon(tx + 1, zoom)
            top, bottom = _lat(ty, zoom), _lat(ty + 1, zoom)
            found.append(
                {
                    "href": URL.format(z=zoom, x=tx, y=ty),
                    "x": round((left - west) * sx, 1),
                    "y": round((north - top) * sy, 1),
                    "width": round((right - left) * sx, 1),
                    "height": round((top - bottom) * sy, 1),
                }
            )
    return found


def tile(z: int, x: int, y: int) -> tuple[bytes, str]:
    """One tile's bytes and type: the kept copy, else fetched from the county's service."""
    source = template()
    if not source:
        raise ApiError(404, "not_found", "No map tile service is configured.")
    if not (0 <= z <= MAX_ZOOM and 0 <= x < 2**z and 0 <= y < 2**z):
        raise ApiError(404, "not_found", "No such tile.")
    folder = Path(current_app.config["INSTANCE_PATH"]) / "tiles" / str(z) / str(x)
    kept = folder / str(y)
    if kept.is_file():
        data = kept.read_bytes()
        return data, _type(data)
    url = source.format(z=z, x=x, y=y)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "sipang-tiles"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as answer:  # noqa: S310
            data = answer.read(MAX_TILE_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise ApiError(502, "tile_unavailable", "The map tile service did not answer.") from error
    kind = _type(data)
    if len(data) > MAX_TILE_BYTES or kind is None:
        raise ApiError(502, "tile_unavailable", "The map tile service sent no image.")
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{y}.{os.getpid()}"
    partial.write_bytes(data)
    partial.replace(kept)
    return data, kind


def _type(data: bytes) -> str | None:
    """The image type by its first bytes (PNG, JPEG or WebP), None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
