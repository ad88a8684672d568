"""The door plate's small map of the household's trees, drawn from their own coordinates
(over the county's tiles where a tile service is configured)."""

import math
from typing import Any

from server import tiles

MAP_W, MAP_H, MAP_PAD = 320, 180, 18


def tree_map(trees: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Points (numbered as the tree list) in a north-up box, with a scale bar; None when no
    tree has a location."""
    placed = [
        (n, t)
        for n, t in enumerate(trees, start=1)
        if t.get("latitude") is not None and t.get("longitude") is not None
    ]
    if not placed:
        return None
    lat0 = sum(t["latitude"] for _, t in placed) / len(placed)
    metres_per_deg = 111_195.0
    xy = [
        (
            t["longitude"] * math.cos(math.radians(lat0)) * metres_per_deg,
            -t["latitude"] * metres_per_deg,
        )
        for _, t in placed
    ]
    xs, ys = [p[0] for p in xy], [p[1] for p in xy]
    span = max(30.0, max(xs) - min(xs), (max(ys) - min(ys)) * MAP_W / MAP_H)
    scale = (MAP_W - 2 * MAP_PAD) / span
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    points = [
        {
            "n": n,
            "x": round(MAP_W / 2 + (x - cx) * scale, 1),
            "y": round(MAP_H / 2 + (y - cy) * scale, 1),
            "alive": t["status"] == "alive",
        }
        for (n, t), (x, y) in zip(placed, xy, strict=True)
    ]
    bar = next((m for m in (5, 10, 20, 50, 100, 200, 500, 1000) if m * scale >= 40), 2000)
    lon_m = math.cos(math.radians(lat0)) * metres_per_deg
    laid = tiles.images(  # the box's edges, back from the drawing's own scale
        south=-(cy + MAP_H / 2 / scale) / metres_per_deg,
        west=(cx - MAP_W / 2 / scale) / lon_m,
        north=-(cy - MAP_H / 2 / scale) / metres_per_deg,
        east=(cx + MAP_W / 2 / scale) / lon_m,
        width=MAP_W,
        height=MAP_H,
    )
    return {
        "tiles": laid,
        "width": MAP_W,
        "height": MAP_H,
        "points": points,
        "bar_px": round(bar * scale, 1),
        "bar_label": f"{bar} 米" if bar < 1000 else f"{bar // 1000} 公里",
        "unplaced": len(trees) - len(placed),
    }
