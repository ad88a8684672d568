"""The county's map tiles (`MAP_TILE_URL`): served from this site by the server, which fetches
each tile once from the county's service and keeps it; the village map draws them under its
points, and offline the map draws from the copies the phone kept (or from coordinates alone)."""

import io
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from tests.browser import serving
from tests.helpers_auth import sign_in_form
from tests.helpers_pwa import check_accessible, enrolled, phone, ready

JSON = {"Accept": "application/json"}
BOX = {"x", "y", "width", "height"}
HERE = {"latitude": 29.2611, "longitude": 115.0934, "accuracy": 6}


def png(colour=(200, 220, 180)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (256, 256), colour).save(out, "PNG")
    return out.getvalue()


class TileService:
    """A county tile service on localhost: a PNG for /{z}/{x}/{y}.png, each request noted."""

    def __init__(self, body: bytes = b""):
        self.requests: list[str] = []
        self.body = body or png()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 — http.server's name
                service.requests.append(self.path)
                if not re.fullmatch(r"/\d+/\d+/\d+\.png", self.path):
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(service.body)))
                self.end_headers()
                self.wfile.write(service.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/{{z}}/{{x}}/{{y}}.png"
        # shutdown() waits for the next poll: every 20 ms, not the default 0.5 s
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tile_service():
    service = TileService()
    yield service
    service.close()


def tile_of(lat: float, lon: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def test_a_tile_is_fetched_once_kept_and_served_from_this_site(app, client, tile_service):
    x, y = tile_of(HERE["latitude"], HERE["longitude"], 17)
    assert client.get(f"/app/tiles/17/{x}/{y}.png").status_code == 404  # no service configured

    app.config["MAP_TILE_URL"] = tile_service.url
    first = client.get(f"/app/tiles/17/{x}/{y}.png")
    assert (first.status_code, first.mimetype) == (200, "image/png")
    assert first.data == tile_service.body
    assert "max-age" in first.headers["Cache-Control"]
    again = client.get(f"/app/tiles/17/{x}/{y}.png")
    assert again.data == tile_service.body
    assert tile_service.requests == [f"/17/{x}/{y}.png"]  # the second came from the kept copy

    for bad in ("20/0/0", f"17/{2**17}/0", "3/0/8"):
        refused = client.get(f"/app/tiles/{bad}.png", headers=JSON)
        assert refused.status_code == 404 and refused.json["error"]["code"] == "not_found"


def test_a_tile_service_that_fails_or_sends_no_image_is_a_502(app, client, tile_service):
    app.config["MAP_TILE_URL"] = tile_service.url
    tile_service.body = b"<html>maintenance</html>"
    refused = client.get("/app/tiles/10/850/420.png", headers=JSON)
    assert refused.status_code == 502 and refused.json["error"]["code"] == "tile_unavailable"
    tile_service.close()
    refused = client.get("/app/tiles/10/851/420.png", headers=JSON)
    assert refused.status_code == 502 and refused.json["error"]["code"] == "tile_unavailable"
    assert not list((Path(app.config["INSTANCE_PATH"]) / "tiles").glob("10/*/*"))  # none kept


def test_the_village_map_draws_the_countys_tiles_and_keeps_them_for_offline(
    app,
    world,
    browser,
    tile_service,
):
    app.config["MAP_TILE_URL"] = tile_service.url
    with serving(app) as site:
        context = phone(browser, geolocation=HERE, permissions=["geolocation"])
        page = enrolled(context, site, app, world)
        page.evaluate("location.hash = '#/map'")
        ready(page, "map")
        page.wait_for_selector("#map-gps[data-tone=ok]")
        tiles = page.locator("svg.map image.map-tile")
        hrefs = tiles.evaluate_all("(images) => images.map((i) => i.getAttribute('href'))")
        assert 1 <= len(hrefs) <= 16
        zooms = {int(href.split("/")[3]) for href in hrefs}
        assert len(zooms) == 1 and 14 <= min(zooms) <= 19, hrefs
        z = zooms.pop()
        x, y = tile_of(HERE["latitude"], HERE["longitude"], z)
        assert f"/app/tiles/{z}/{x}/{y}.png" in hrefs  # the tile under the phone's position
        assert page.locator("svg.map circle.map-me").count() == 1  # drawn over the tiles
        kept = "caches.open('sipang-tiles').then((c) => c.keys()).then((k) => k.length)"
        page.wait_for_function(f"{kept}.then((n) => n >= {len(hrefs)})")
        check_accessible(page, "map with tiles")

        context.set_offline(True)
        fetched = len(tile_service.requests)
        page.reload()
        ready(page, "map")
        page.wait_for_selector("#map-gps[data-tone=ok]")
        assert page.locator("svg.map circle.map-me").count() == 1
        offline = page.locator("svg.map image.map-tile").evaluate_all(
            "(images) => images.map((i) => i.getAttribute('href'))"
        )
        assert sorted(offline) == sorted(hrefs)
        served = page.evaluate(
            f"fetch('{hrefs[0]}').then(async (r) => [r.status, (await r.arrayBuffer()).byteLength])"
        )
        assert served == [200, len(tile_service.body)]  # the phone's copy, with no signal
        assert len(tile_service.requests) == fetched
        context.close()


def test_without_a_tile_service_the_map_is_drawn_from_coordinates_alone(
    app,
    world,
    browser,
):
    with serving(app) as site:
        context = phone(browser, geolocation=HERE, permissions=["geolocation"])
        page = enrolled(context, site, app, world)
        assert page.locator("meta[name=sipang-tiles]").count() == 0
        page.evaluate("location.hash = '#/map'")
        ready(page, "map")
        page.wait_for_selector("#map-gps[data-tone=ok]")
        assert page.locator("svg.map circle.map-me").count() == 1
        assert page.locator("svg.map image").count() == 0
        context.close()


def test_the_bureaus_map_lays_the_countys_tiles_under_its_villages(app, client, world, db):
    """Each village's circle falls on the tile that holds its own coordinates."""
    sign_in_form(client, "bureau")
    assert "<image" not in client.get("/bureau/map").get_data(as_text=True)  # no service set

    app.config["MAP_TILE_URL"] = "http://127.0.0.1:9/{z}/{x}/{y}.png"  # never fetched here
    page = client.get("/bureau/map").get_data(as_text=True)
    images = [
        {
            k: (float(v) if k in "x y width height" else v)
            for k, v in re.findall(r'(\w+)="([^"]+)"', tag)
        }
        for tag in re.findall(r"<image ([^>]+)>", page)
    ]
    assert 1 <= len(images) <= 16
    village = next(db.query("SELECT * FROM villages WHERE code = ?", [world.village_a]))
    circle = re.search(
        rf'href="/bureau/villages/{world.village_a}"[^>]*>\s*<circle cx="([\d.]+)" cy="([\d.]+)"',
        page,
    )
    cx, cy = float(circle.group(1)), float(circle.group(2))
    under = [
        i
        for i in images
        if i["x"] <= cx <= i["x"] + i["width"] and i["y"] <= cy <= i["y"] + i["height"]
    ]
    assert len(under) == 1, (cx, cy, images)
    z, x, y = (int(n) for n in re.search(r"/(\d+)/(\d+)/(\d+)\.png$", under[0]["href"]).groups())
    assert (x, y) == tile_of(village["latitude"], village["longitude"], z)


def test_the_plates_small_map_lays_the_countys_tiles_under_its_trees(app, client, world, db):
    """The farmer's map: the tree's numbered point falls on the tile holding its coordinates;
    without a tile service the map is drawn from coordinates alone."""
    where = (29.2611, 115.0934)
    db.execute(
        "UPDATE measurements SET latitude = ?, longitude = ? WHERE tree_id = ?",
        [*where, world.tree_a],
    )
    db.conn.commit()
    plain = client.get(f"/h/{world.household_a}").get_data(as_text=True)
    assert 'class="tree-map"' in plain and "<image" not in plain

    app.config["MAP_TILE_URL"] = "http://127.0.0.1:9/{z}/{x}/{y}.png"  # never fetched here
    page = client.get(f"/h/{world.household_a}").get_data(as_text=True)
    images = [
        {k: (float(v) if k in BOX else v) for k, v in re.findall(r'(\w+)="([^"]+)"', tag)}
        for tag in re.findall(r"<image ([^>]+)/>", page)
    ]
    assert 1 <= len(images) <= 16
    cx, cy = (float(n) for n in re.search(r'<circle cx="([\d.]+)" cy="([\d.]+)"', page).groups())
    under = [
        i
        for i in images
        if i["x"] <= cx <= i["x"] + i["width"] and i["y"] <= cy <= i["y"] + i["height"]
    ]
    assert len(under) == 1, (cx, cy, images)
    z, x, y = (int(n) for n in re.search(r"/(\d+)/(\d+)/(\d+)\.png$", under[0]["href"]).groups())
    assert 15 <= z <= 19  # a yard's worth of map, at street level
    assert (x, y) == tile_of(*where, z)
