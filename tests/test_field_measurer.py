"""The measurer in the field, in a real Chromium at 360 px: finding a household by part of its
head's name with no signal, and binding a tree tag the way the kit prints it (scanned by the
camera, or typed as "T00017-J"), then finding the tree again by scanning its tag."""

import io
import json
import shutil
import uuid

import pytest
from PIL import Image

from server import households
from server.db import connect, get_db
from tests.browser import CHROMIUM_ARGS, serving
from tests.conftest import bearer
from tests.fake_camera import printed_codes, write_video
from tests.helpers_pwa import (
    check_accessible,
    enrolled,
    fill_tree,
    open_tree_form,
    phone,
    ready,
    wait_until,
)

NEIGHBOURS = [  # head of household, door number, phone
    ("王小三", "长水村12号", "13800001201"),
    ("李四海", "长水村13号", "13800001301"),
    ("王五", None, None),
]


def add_neighbours(app) -> dict[str, str]:
    """Three more households in village A; returns their codes by head name."""
    codes = {}
    with app.app_context():
        db = get_db()
        village = db["villages"].get(1)
        for name, door, phone_number in NEIGHBOURS:
            row = households.create_household(db, village, head_name=name, phone=phone_number)
            if door:
                db["households"].update(
                    row["id"], households.personal_columns(row["code"], door_number=door)
                )
            codes[name] = row["code"]
    return codes


def phone_roster(page) -> list[dict]:
    return page.evaluate(
        """async () => (await import('/app/js/idb.js'))
            .withStore('households', 'readonly', (s) => s.getAll())"""
    )


def test_a_household_is_found_offline_by_part_of_its_head_name(browser, site, app, world):
    codes = add_neighbours(app)
    context = phone(browser)
    page = enrolled(context, site, app, world)
    page.wait_for_function("document.querySelectorAll('#households li').length === 4")
    assert page.inner_text("h1") == "长水村"  # the village's name, not its 12 digits
    assert page.get_attribute("#season-progress", "max") == "4"
    roster = json.dumps(phone_roster(page), ensure_ascii=False)
    assert "王*三" in roster and "长水村12号" in roster
    for secret in ["王小三", "李四海", "张三丰", "13800001201", "13912345678"]:
        assert secret not in roster  # the phone never holds a full name or a phone number
    check_accessible(page, "village with search")

    context.set_offline(True)
    page.reload()
    ready(page, "village")
    items = page.locator("#households > li")
    page.fill("#household-search", "王")
    assert sorted(items.evaluate_all("(li) => li.map((x) => x.dataset.code)")) == sorted(
        [codes["王小三"], codes["王五"]]
    )
    assert page.inner_text("#search-count") == "找到 2 户"
    page.fill("#household-search", "三")  # 王*三; 张*丰 does not show its middle character
    assert items.evaluate_all("(li) => li.map((x) => x.dataset.code)") == [codes["王小三"]]
    page.fill("#household-search", "13号")  # by door number
    assert items.evaluate_all("(li) => li.map((x) => x.dataset.code)") == [codes["李四海"]]
    page.fill("#household-search", codes["王五"][13:17])  # by the household's number
    assert items.evaluate_all("(li) => li.map((x) => x.dataset.code)") == [codes["王五"]]
    page.fill("#household-search", "王三")
    items.first.locator("a").click()
    ready(page, "household")
    assert page.inner_text("h1") == "第 0002 户 · 王*三 · 长水村12号"
    assert page.locator(f"#households li[data-code='{world.household_a}']").count() == 0
    context.close()

    with connect(app.config["DATABASE"]) as db:  # handing door numbers to the phone is logged
        pulled = db.execute(
            "SELECT detail FROM audit_log WHERE action = 'pii.roster_pulled'"
        ).fetchall()
        assert pulled and json.loads(pulled[0][0])["fields"] == ["door_number"]


@pytest.fixture
def tag_video(app, client, world, tmp_path):
    """The kit's first printed tree tag as the camera sees it; returns (video, tag, printed)."""
    response = client.post(
        f"/api/v1/villages/{world.village_a}/kits?tags=2", headers=bearer(world.tokens["admin"])
    )
    assert response.status_code == 200, response.json
    codes = printed_codes(response.data)
    tags = sorted(text for text in codes if "/T/" in text)
    assert len(tags) == 2
    full = tags[0].rsplit("/", 1)[1]
    second = tags[1].rsplit("/", 1)[1]
    return write_video(tmp_path / "tag.y4m", [codes[tags[0]]]), full, second


def test_a_printed_tag_is_bound_by_scanning_it_and_by_typing_it_as_printed(
    playwright,
    app,
    world,
    tag_video,
):
    video, tag, second = tag_video
    camera = playwright.chromium.launch(
        executable_path=shutil.which("chromium"),
        args=[
            *CHROMIUM_ARGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}",
        ],
    )
    try:
        with serving(app) as url:
            context = phone(camera, permissions=["camera"])
            page = enrolled(context, url, app, world)
            context.set_offline(True)

            open_tree_form(page, world.household_a)
            fill_tree(page)
            page.click("#tag-scan")  # "扫描树牌": the camera sees the printed tag
            page.wait_for_function(f"document.querySelector('#tag').value === '{tag}'")
            assert tag in page.inner_text("#tag-scan-message")
            check_accessible(page, "tree form with the tag scanner")
            page.click("#save")
            page.wait_for_selector("#saved")
            assert tag in page.inner_text("#recap")  # what was saved, said back

            # The second tag typed as the kit prints it under the QR: "T00002-X".
            printed = second.split("-", 1)[1]
            page.click("#saved button")  # 再登记一棵
            ready(page, "tree-new")
            fill_tree(page, dbh="22.0", height="14.0")
            page.fill("#tag", printed.lower())
            page.click("#save")
            page.wait_for_selector("#saved")
            ops = page.evaluate(
                """async () => (await (await import('/app/js/outbox.js')).pendingOps(100))
                    .filter((op) => op.kind === 'tree.register').map((op) => op.payload.tag)"""
            )
            assert ops == [tag, second]

            # A mistyped printed tag is caught beside its field.
            page.click("#saved button")
            ready(page, "tree-new")
            fill_tree(page)
            page.fill("#tag", printed[:-1] + ("A" if printed[-1] != "A" else "B"))
            page.click("#save")
            page.wait_for_selector("#tag-error[data-tone=error]")
            assert "不是有效的树牌编号" in page.inner_text("#tag-error")
            assert page.evaluate("document.activeElement.id") == "tag"

            # Back in the village: scanning the tag opens that tree to re-measure.
            page.click("#back-household")
            ready(page, "household")
            page.evaluate("location.hash = '#/village'")
            ready(page, "village")
            page.click("#scan")
            ready(page, "tree-measure")
            assert "18.4" in page.inner_text("main .meta")
            context.close()
    finally:
        camera.close()


def jpeg_bytes(colour=(90, 60, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), colour).save(out, "JPEG", quality=85)
    return out.getvalue()


def test_a_tree_marked_dead_offline_with_a_photo_shows_both_on_the_plate(
    browser,
    site,
    app,
    client,
    world,
):
    """Offline: the measurer marks a tree dead, says why (病虫害) and photographs the dead tree;
    with signal the status, reason and photo reach the server once, and the farmer's plate
    shows the reason and that photo."""
    context = phone(browser)
    page = enrolled(context, site, app, world)
    context.set_offline(True)
    page.evaluate(f"location.hash = '#/household/{world.household_a}'")
    ready(page, "household")
    card = page.locator(f"#trees > li[data-tree='{world.tree_a}']")
    card.get_by_role("button", name="死亡").click()
    card.get_by_label("原因").select_option(label="病虫害")
    page.set_input_files(
        f"#status-photo-{world.tree_a}",
        files=[{"name": "dead.jpg", "mimeType": "image/jpeg", "buffer": jpeg_bytes()}],
    )
    page.wait_for_selector(f"#status-photo-{world.tree_a}-status[data-tone=ok]")
    # A sync round ends meanwhile (here: no signal): the open question and its photo stay.
    page.evaluate(
        """() => new Promise((resolve) => {
            let started = false;
            window.sipang.scheduler.subscribe((s) => {
                if (s.state === 'running') started = true;
                else if (started) resolve();
            });
            window.sipang.scheduler.kick('test');
        })"""
    )
    page.wait_for_timeout(300)  # the redraw a finished round asks for
    assert page.is_visible(f"#status-photo-{world.tree_a}-status[data-tone=ok]")
    check_accessible(page, "marking a tree dead with a photo")
    card.get_by_role("button", name="确定：已死亡").click()
    page.wait_for_selector(f"#trees > li[data-tree='{world.tree_a}'] .badge.danger")
    queued = page.evaluate(
        """async () => {
            const outbox = await import('/app/js/outbox.js');
            const [op] = (await outbox.pendingOps(10)).filter((o) => o.kind === 'tree.status');
            return [op.payload, (await outbox.status()).photosPending];
        }"""
    )
    payload, photos_pending = queued
    assert payload["status"] == "dead" and payload["reason"] == "pests"
    assert len(payload["photo_sha256"]) == 64 and photos_pending == 1

    context.set_offline(False)
    page.evaluate("window.sipang.scheduler.kick('test')")
    wait_until(page, "s.pending === 0 && s.photosPending === 0 && s.rejected === 0")
    context.close()

    with connect(app.config["DATABASE"]) as db:
        row = db.execute(
            "SELECT status, status_reason, status_photo_sha256 FROM trees WHERE id = ?",
            [world.tree_a],
        ).fetchone()
        stored = db.execute(
            "SELECT count(*) FROM blobs WHERE sha256 = ?", [payload["photo_sha256"]]
        ).fetchone()[0]
    assert tuple(row) == ("dead", "pests", payload["photo_sha256"])
    assert stored == 1

    plate = client.get(f"/h/{world.household_a}")
    assert plate.status_code == 200
    assert "（已死亡：病虫害）" in plate.text
    photo = client.get(f"/h/{world.household_a}/trees/{world.tree_a}.jpg")
    assert (photo.status_code, photo.mimetype) == (200, "image/jpeg")
    shown = Image.open(io.BytesIO(photo.data)).convert("RGB").getpixel((10, 10))
    assert all(abs(a - b) < 20 for a, b in zip(shown, (90, 60, 30), strict=True))  # that photo


def test_a_status_with_an_unreadable_reason_or_photo_is_rejected_and_changes_nothing(
    app, client, world
):
    """Bad input on the status path: each operation is rejected with its reason, the tree
    stands as it was."""
    bad = [
        {"status": "dead", "reason": "x" * 41},
        {"status": "dead", "reason": 7},
        {"status": "felled", "photo_sha256": "not-a-hash"},
    ]
    ops = [
        {
            "op_id": str(uuid.uuid4()),
            "device_seq": seq,
            "record_id": world.tree_a,
            "kind": "tree.status",
            "payload": payload,
            "client_time": "2026-12-01T08:00:00.000Z",
            "base_version": None,
        }
        for seq, payload in enumerate(bad, start=1)
    ]
    answer = client.post(
        "/api/v1/sync/push",
        json={"device_id": world.device_id, "sent_at": None, "ops": ops},
        headers=bearer(world.tokens["measurer"]),
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    results = answer.json["results"]
    assert [(r["status"], r["code"]) for r in results] == [("rejected", "validation_failed")] * 3
    with connect(app.config["DATABASE"]) as db:
        row = db.execute(
            "SELECT status, status_reason, status_photo_sha256 FROM trees WHERE id = ?",
            [world.tree_a],
        ).fetchone()
    assert tuple(row) == ("alive", None, None)
