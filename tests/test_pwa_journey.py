"""A measurer's day in a real Chromium: the app opened once online, then used with no signal.

First load online → airplane mode → the app still opens → enrol by scanning the kit's QR with
the camera (Chromium's fake camera plays a video of the real printed codes) → scan the door
plate → register three trees with photos and GPS → the phone kills the app → reopen: the
records are still waiting → signal returns → synced exactly once (checked in the server's
database) → the household's public page shows them. Then the same day on a `gprs` link.
"""

import io
import random
from contextlib import suppress

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import sync_playwright

from server.db import connect
from tests.browser import GPRS, kill_phone, open_phone, serving
from tests.conftest import bearer
from tests.fake_camera import printed_codes, write_video
from tests.helpers_pwa import FIELD, WAIT_MS, check_accessible, ready, wait_until

# A 2G link is slow: the test waits for states (never for a clock), up to this long for each.
TREES = [  # species, DBH cm, height m, position
    ("cunninghamia_lanceolata", "18.4", "12.5", "house"),
    ("cinnamomum_camphora", "31.0", "11.0", "road"),
    ("cunninghamia_lanceolata", "9.6", "7.2", "water"),
]


def camera_photo(seed: int) -> bytes:
    """A 3000 × 2000 JPEG as a phone camera takes it: a tree against the sky."""
    rng = random.Random(seed)
    image = Image.new("RGB", (3000, 2000), (150, 190, 225))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 1500, 3000, 2000), fill=(95, 120, 60))  # the field
    x = rng.randrange(1000, 2000)
    draw.rectangle((x - 90, 700, x + 90, 1650), fill=(90, 60, 35))  # the trunk
    for _ in range(12):  # the crown
        cx, cy, r = x + rng.randrange(-500, 500), rng.randrange(250, 800), rng.randrange(200, 380)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(30, rng.randrange(90, 140), 40))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


@pytest.fixture
def kit_video(app, client, world, tmp_path):
    """The village's printed kit, cut into its enrolment QR and the door plate, as a video."""
    response = client.post(
        f"/api/v1/villages/{world.village_a}/kits?tags=2", headers=bearer(world.tokens["admin"])
    )
    assert response.status_code == 200, response.json
    codes = printed_codes(response.data)
    plate = next(text for text in codes if text.endswith(f"/H/{world.household_a}"))
    enrolment = next(text for text in codes if "/E/" in text)
    return write_video(tmp_path / "kit.y4m", [codes[enrolment], codes[plate]])


class Signal:
    """The phone's network: on or off (the whole browser, service worker included) and, for
    `gprs`, the page's link throttled through CDP at DESIGN.md §5's figures."""

    def __init__(self, context, page, profile: str | None):
        self.context = context
        self.cdp = context.new_cdp_session(page) if profile == "gprs" else None
        self.set(online=True)

    def set(self, *, online: bool) -> None:
        self.context.set_offline(not online)
        if self.cdp:  # sent after set_offline, so the throttle is what the page ends up with
            self.cdp.send("Network.emulateNetworkConditions", {**GPRS, "offline": not online})


def enrol_by_camera(page) -> None:
    page.fill("#code", "")
    page.click("#scan")  # "扫描注册二维码": the camera sees the kit's enrolment QR
    page.wait_for_function("document.querySelector('#code').value.length >= 12", timeout=WAIT_MS)
    page.click("#enrol")
    ready(page, "village")


def register_tree(page, index: int, species: str, dbh: str, height: str, position: str) -> None:
    page.click("a[href^='#/tree/new/']")
    ready(page, "tree-new")
    page.select_option("#species", species)
    page.check(f"input[name=position][value={position}]")
    page.fill("#dbh", dbh)
    page.fill("#height", height)
    page.wait_for_selector("#estimate[data-tone=ok]")
    page.wait_for_selector("#gps-status[data-tone=ok]")
    page.set_input_files(
        "#photo",
        files=[
            {"name": f"IMG_{index}.jpg", "mimeType": "image/jpeg", "buffer": camera_photo(index)}
        ],
    )
    page.wait_for_selector("#photo-status[data-tone=ok]", timeout=WAIT_MS)
    if index == 0:
        check_accessible(page, "tree form")
    page.click("#save")
    page.wait_for_selector("#saved")
    page.click("#back-household")  # the one "返回这一户" button
    ready(page, "household")


def waiting_ops(page) -> list[dict]:
    return page.evaluate(
        """async () => (await (await import('/app/js/outbox.js')).pendingOps(1000))
            .map((op) => ({
                kind: op.kind, record_id: op.record_id, photo: op.payload.photo_sha256 ?? null,
            }))"""
    )


@pytest.mark.parametrize("network", [None, "gprs"])
def test_a_day_in_the_field(app, world, kit_video, tmp_path, network):
    profile = tmp_path / "phone"
    with serving(app) as url, sync_playwright() as playwright:
        phone = open_phone(playwright, profile, camera=kit_video, geolocation=FIELD)
        page = phone.pages[0] if phone.pages else phone.new_page()
        signal = Signal(phone, page, network)

        # First visit, online: the shell is cached by the service worker.
        page.goto(f"{url}/app/", timeout=WAIT_MS)
        ready(page, "enrol")
        page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=WAIT_MS)
        check_accessible(page, "enrol")

        # Airplane mode: the app still opens, and enrolling says it needs the network.
        signal.set(online=False)
        page.reload()
        ready(page, "enrol")
        assert page.is_visible("#net")  # the "离线" chip
        page.fill("#code", "ABCD-EFGH-JKMN")
        page.click("#enrol")
        page.wait_for_selector("#enrol-status[data-tone=error]")
        assert "联网" in page.inner_text("#enrol-status")

        # Back in signal for a moment: enrol by camera; the village comes down with it.
        signal.set(online=True)
        enrol_by_camera(page)
        page.wait_for_selector("#households li")
        check_accessible(page, "village")

        # No signal from here on. Scan the door plate with the camera.
        signal.set(online=False)
        page.click("#scan")
        ready(page, "household")
        assert world.household_a in page.inner_text("main")
        check_accessible(page, "household")
        for index, tree in enumerate(TREES):
            register_tree(page, index, *tree)
        assert page.locator("#trees > li").count() == 1 + len(TREES)
        assert page.locator("#trees .badge.waiting").count() >= len(TREES)
        ops = waiting_ops(page)
        assert [op["kind"] for op in ops] == ["tree.register", "tree.measure"] * len(TREES)
        assert all(op["photo"] for op in ops if op["kind"] == "tree.measure")

        # The phone kills the app; nothing has reached the server.
        assert kill_phone(profile) > 0
        with suppress(Exception):  # Playwright may or may not have noticed the browser is gone
            phone.close()
        with connect(app.config["DATABASE"]) as db:
            assert db.execute("SELECT count(*) FROM trees").fetchone()[0] == 1

        # Reopened, still offline: everything is still waiting, shown on the upload screen.
        phone = open_phone(playwright, profile, camera=kit_video, geolocation=FIELD)
        page = phone.pages[0] if phone.pages else phone.new_page()
        signal = Signal(phone, page, network)
        signal.set(online=False)
        page.goto(f"{url}/app/#/outbox", timeout=WAIT_MS)
        ready(page, "outbox")
        assert waiting_ops(page) == ops
        assert page.locator(".ops li.pending").count() == len(ops)
        assert "6" in page.inner_text("#queue")
        check_accessible(page, "outbox")

        # Signal returns: the scheduler sends everything, photos included, exactly once.
        signal.set(online=True)
        wait_until(page, "s.pending === 0 && s.photosPending === 0")
        page.reload()
        ready(page, "outbox")
        assert page.locator(".ops li.pending").count() == 0
        assert page.locator(".ops li.done").count() == len(ops)

        # The household's public page, as the farmer sees it when he scans his plate.
        page.goto(f"{url}/h/{world.household_a}", timeout=WAIT_MS)
        cards = page.locator("#trees li.tree")
        assert cards.count() == 1 + len(TREES)  # the tree from before and the three new ones
        shown = [" ".join(text.split()) for text in cards.all_inner_texts()]
        for species, position, size in (
            ("杉木", "宅旁", "胸径 18.4 厘米 · 树高 12.5 米"),
            ("樟树", "路旁", "胸径 31.0 厘米 · 树高 11.0 米"),
            ("杉木", "水旁", "胸径 9.6 厘米 · 树高 7.2 米"),
        ):
            assert any(species in card and position in card and size in card for card in shown)
        assert page.locator("#trees img").count() == len(TREES)  # their photos, on the plate
        assert page.locator("#trees svg circle").count() == len(TREES)  # and where they stand
        check_accessible(page, "household page")
        phone.close()

    with connect(app.config["DATABASE"]) as db:
        synced = db.execute(
            "SELECT kind, record_id FROM sync_ops WHERE device_id != ? ORDER BY device_seq",
            [world.device_id],
        ).fetchall()
        assert [tuple(row) for row in synced] == [(op["kind"], op["record_id"]) for op in ops]
        trees = db.execute(
            "SELECT id, species_id, position FROM trees WHERE id != ?", [world.tree_a]
        ).fetchall()
        assert sorted((row[1], row[2]) for row in trees) == sorted((s, p) for s, _, _, p in TREES)
        measured = db.execute(
            """SELECT m.dbh_mm, m.height_cm, m.latitude, m.gps_accuracy_m, m.photo_sha256, b.size
               FROM measurements m LEFT JOIN blobs b ON b.sha256 = m.photo_sha256
               WHERE m.tree_id != ? ORDER BY m.dbh_mm""",
            [world.tree_a],
        ).fetchall()
        assert [(row[0], row[1]) for row in measured] == [(96, 720), (184, 1250), (310, 1100)]
        assert all(abs(row[2] - FIELD["latitude"]) < 1e-6 and row[3] == 8 for row in measured)
        assert all(row[4] and row[5] for row in measured), measured  # every photo arrived whole
