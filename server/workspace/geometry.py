"""Maps drawn from coordinates alone (no tile service): villages of a county placed in an
SVG box, a flagged tree's point beside its village centre."""

import math
from typing import Any

from server import tiles

EARTH_M = 6_371_000
PHOTO_MISSING_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="240" height="160" viewBox="0 0 240 160">'
    '<rect width="240" height="160" fill="#eee"/>'
    '<text x="120" y="85" font-size="16" text-anchor="middle" fill="#555">照片尚未上传</text>'
    "</svg>"
)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_M * math.asin(math.sqrt(a))


def point_near(
    centre_lat: float | None,
    centre_lon: float | None,
    lat: float | None,
    lon: float | None,
    box: int = 160,
) -> dict[str, Any] | None:
    """Where a reading lies from its village centre: metres, and x/y in a `box` square SVG
    scaled so the point fits (centre in the middle)."""
    if None in (centre_lat, centre_lon, lat, lon):
        return None
    metres = distance_m(centre_lat, centre_lon, lat, lon)
    north = (lat - centre_lat) * math.pi / 180 * EARTH_M
    east = (lon - centre_lon) * math.pi / 180 * EARTH_M * math.cos(math.radians(centre_lat))
    reach = max(abs(north), abs(east), 100.0) * 1.25
    half = box / 2
    return {
        "metres": round(metres),
        "x": round(half + east / reach * half, 1),
        "y": round(half - north / reach * half, 1),
        "box": box,
        "lat": lat,
        "lon": lon,
    }


def place(rows: list[dict[str, Any]], width: int = 320, height: int = 320, pad: int = 30):
    """Rows with latitude/longitude get x/y in a width × height SVG (north up, distances
    kept); rows without coordinates are returned separately."""
    placed = [r for r in rows if r.get("latitude") is not None and r.get("longitude") is not None]
    missing = [r for r in rows if r not in placed]
    if not placed:
        return [], missing
    lat0 = sum(r["latitude"] for r in placed) / len(placed)
    scale_x = math.cos(math.radians(lat0))
    xs = [r["longitude"] * scale_x for r in placed]
    ys = [r["latitude"] for r in placed]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 0.01)
    usable = min(width, height) - 2 * pad
    out = []
    for row, x, y in zip(placed, xs, ys, strict=True):
        out.append(
            row
            | {
                "x": round(pad + (x - min(xs)) / span * usable, 1),
                "y": round(height - pad - (y - min(ys)) / span * usable, 1),
            }
        )
    return out, missing


def place_tiles(rows: list[dict[str, Any]], width: int = 320, height: int = 320, pad: int = 30):
    """The county's map tiles under `place`'s box for the same rows (empty without a tile
    service or without placed rows)."""
    placed = [r for r in rows if r.get("latitude") is not None and r.get("longitude") is not None]
    if not placed:
        return []
    cos0 = math.cos(math.radians(sum(r["latitude"] for r in placed) / len(placed)))
    xs = [r["longitude"] * cos0 for r in placed]
    ys = [r["latitude"] for r in placed]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 0.01)
    per_px = span / (min(width, height) - 2 * pad)
    return tiles.images(
        south=min(ys) - pad * per_px,
        west=(min(xs) - pad * per_px) / cos0,
        north=min(ys) + (height - pad) * per_px,
        east=(min(xs) + (width - pad) * per_px) / cos0,
        width=width,
        height=height,
    )
