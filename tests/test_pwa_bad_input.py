"""What goes wrong in the field, in a real Chromium: each gets a clear message and loses nothing.

Camera refused, GPS refused or vague, a plate from another village, a mistyped plate, a 20 MB
photo, a file that is no photo, storage full, the phone's clock set wrong; and the app as an
older villager sees it: 320 px wide, a large system font, English on request.
"""

import io
import os
from datetime import UTC, datetime

import pytest
from PIL import Image

from server.db import connect
from tests.browser import CHROMIUM_ARGS, serious_violations
from tests.helpers_pwa import (
    FIELD,
    enrolled,
    fill_tree,
    open_tree_form,
    outbox_count,
    phone,
    ready,
    wait_until,
)
from village_kits.codes import checksum_symbol


def test_mistyped_and_foreign_plates_are_refused_offline(browser, site, app, world):
    context = phone(browser)
    page = enrolled(context, site, app, world)
    context.set_offline(True)
    body = world.household_a[:-1]
    wrong_check = body + ("A" if world.household_a[-1] != "A" else "B")
    cases = {
        wrong_check: "不是有效的门牌编码",
        world.household_c: "其他村",
        "360423101201-0099-" + "K" + checksum_symbol("360423101201-0099-K"): "名册里还没有这一户",
        "hello": "不是四旁的门牌",
    }
    message = page.locator("#household-code-message")
    for typed, expected in cases.items():
        message.evaluate("(el) => { el.textContent = ''; }")
        page.fill("#household-code", typed)
        page.click("form.manual button[type=submit]")
        message.wait_for()
        assert expected in message.inner_text(), (typed, message.inner_text())
        assert page.evaluate("document.body.dataset.screen") == "village"
    page.fill("#household-code", world.household_a.replace("-", "").lower())  # typed loosely
    page.click("form.manual button[type=submit]")
    ready(page, "household")
    context.close()


def test_camera_refused_leaves_typing(playwright, site, app, world):
    import shutil

    # A camera exists but the measurer says no: the browser answers NotAllowedError.
    browser = playwright.chromium.launch(
        executable_path=shutil.which("chromium"),
        args=[*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--deny-permission-prompts"],
    )
    try:
        page = enrolled(phone(browser), site, app, world)
        page.click("#scan")
        message = page.locator(".scan .message[data-tone=error]")
        message.wait_for()
        assert "相机权限被拒绝" in message.inner_text()
        assert page.is_visible("#household-code")
        assert serious_violations(page) == []
    finally:
        browser.close()


def test_gps_refused_still_saves_and_vague_gps_is_shown(browser, site, app, world):
    refused = phone(browser)  # no geolocation permission
    page = enrolled(refused, site, app, world)
    open_tree_form(page, world.household_a)
    page.wait_for_selector("#gps-status[data-tone=warn]")
    assert "定位权限被拒绝" in page.inner_text("#gps-status")
    fill_tree(page)
    page.click("#save")
    page.wait_for_selector("#saved")
    assert outbox_count(page) == 2  # registration + measurement, without a position
    refused.close()

    vague = phone(browser, geolocation={**FIELD, "accuracy": 150}, permissions=["geolocation"])
    page = enrolled(vague, site, app, world)
    open_tree_form(page, world.household_a)
    page.wait_for_selector("#gps-status[data-tone=warn]")
    assert "±150 米" in page.inner_text("#gps-status") and "精度差于" in page.inner_text(
        "#gps-status"
    )
    vague.close()


def test_a_20_mb_photo_is_made_small_on_the_phone(browser, site, app, world):
    context = phone(browser)
    page = enrolled(context, site, app, world)
    open_tree_form(page, world.household_a)
    width, height = 5184, 3888  # a 20 MP camera, every pixel noise: the worst case for JPEG
    huge = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(
        huge, "JPEG", quality=98
    )
    assert huge.tell() > 20_000_000
    page.set_input_files(
        "#photo", files=[{"name": "IMG.jpg", "mimeType": "image/jpeg", "buffer": huge.getvalue()}]
    )
    page.wait_for_selector("#photo-status[data-tone=ok]", timeout=120_000)
    assert "1280×960" in page.inner_text("#photo-status")

    page.set_input_files(
        "#photo", files=[{"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo"}]
    )
    page.wait_for_selector("#photo-status[data-tone=error]")
    assert "无法读取" in page.inner_text("#photo-status")
    context.close()


def test_storage_full_saves_nothing_and_says_so(browser, site, app, world):
    """Chromium offers a test no way to shrink a profile's quota (CDP's
    Storage.overrideQuotaForOrigin changes nothing in this Chromium), so a full disk is
    reproduced where the browser reports it: IndexedDB raising QuotaExceededError mid-write."""
    context = phone(browser)
    page = enrolled(context, site, app, world)
    context.set_offline(True)
    page.evaluate(
        """() => {
            const add = IDBObjectStore.prototype.add;
            window.diskFull = true;
            IDBObjectStore.prototype.add = function (...args) {
                if (window.diskFull && this.name === "photos") {
                    throw new DOMException("The disk is full", "QuotaExceededError");
                }
                return add.apply(this, args);
            };
        }"""
    )
    open_tree_form(page, world.household_a)
    fill_tree(page)
    photo = io.BytesIO()
    Image.frombytes("RGB", (800, 600), os.urandom(800 * 600 * 3)).save(photo, "JPEG", quality=90)
    page.set_input_files(
        "#photo", files=[{"name": "a.jpg", "mimeType": "image/jpeg", "buffer": photo.getvalue()}]
    )
    page.wait_for_selector("#photo-status[data-tone=ok]")
    page.click("#save")
    error = page.locator("#form-error[data-tone=error]")
    error.wait_for()
    assert "手机存储已满，没有保存" in error.inner_text()
    assert outbox_count(page) == 0  # the registration went with the failed measurement: neither
    assert page.locator("#save").is_enabled()  # the measurer frees space and saves again
    page.evaluate("window.diskFull = false")
    page.click("#save")
    page.wait_for_selector("#saved")
    assert outbox_count(page) == 2
    context.close()


def test_a_wrong_clock_is_shown_and_flagged(browser, site, app, world):
    context = phone(browser, geolocation=FIELD, permissions=["geolocation"])
    page = enrolled(context, site, app, world, clock=datetime(2025, 3, 1, 8, 0, tzinfo=UTC))
    page.wait_for_function("document.querySelector('#queue').textContent.includes('手机时间慢了')")
    open_tree_form(page, world.household_a)
    fill_tree(page)
    page.click("#save")
    page.wait_for_selector("#saved")
    wait_until(page, "s.pending === 0 && s.done === 2")  # sent as usual, nothing held back
    with connect(app.config["DATABASE"]) as db:
        flags = db.execute(
            """SELECT f.code FROM flags f JOIN measurements m ON m.id = f.measurement_id
               WHERE m.tree_id != ?""",
            [world.tree_a],
        ).fetchall()
        assert ("clock_skew",) in [tuple(row) for row in flags]
    context.close()


@pytest.mark.parametrize("language", ["zh", "en"])
def test_narrow_phone_with_a_large_font(browser, site, app, world, language):
    context = browser.new_context(viewport={"width": 320, "height": 640}, locale="zh-CN")
    page = enrolled(context, site, app, world)
    context.new_cdp_session(page).send(
        "Page.setFontSizes", {"fontSizes": {"standard": 24, "fixed": 22}}
    )
    if language == "en":
        page.click("#lang")
        page.wait_for_function("document.documentElement.lang === 'en'")
        page.reload()
        ready(page, "village")
        assert page.inner_text("#lang") == "中文"  # the choice outlives a reload
    for hash_, screen in [
        ("#/village", "village"),
        (f"#/household/{world.household_a}", "household"),
        (f"#/tree/new/{world.household_a}", "tree-new"),
        ("#/outbox", "outbox"),
        ("#/map", "map"),
        ("#/enrol", "enrol"),
    ]:
        page.evaluate(f"location.hash = '{hash_}'")
        ready(page, screen)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, (screen, overflow)
        small = page.evaluate(
            """() => [...document.querySelectorAll(
                    'main button, main a.button, main input, main select')]
                .filter((el) => el.offsetParent && el.type !== 'radio' && el.type !== 'file')
                .filter((el) => el.getBoundingClientRect().height < 44)
                .map((el) => el.outerHTML.slice(0, 80))"""
        )
        assert small == [], screen
        if language == "en":  # every word of the app's own is English (species keep their names)
            words = page.evaluate(
                "[...document.querySelectorAll("
                "'main h1, main label, main button, main legend, #queue')]"
                ".map((el) => el.textContent).join(' | ')"
            )
            for name in ("四旁", "长水村", "张*丰"):  # names stay as they are: app, village, head
                words = words.replace(name, "")
            assert not any("\u4e00" <= ch <= "\u9fff" for ch in words), words
        assert serious_violations(page) == [], screen
    context.close()


def test_a_tagged_tree_is_found_by_its_tag_remeasured_and_marked_dead(browser, site, app, world):
    """Offline: a tree registered with its pre-printed tag is opened again by typing the tag,
    re-measured against the version it had, then marked dead after a confirmation."""
    context = phone(browser)
    page = enrolled(context, site, app, world)
    context.set_offline(True)
    tag = "360423101201-T00007-" + checksum_symbol("360423101201-T00007")
    open_tree_form(page, world.household_a)
    fill_tree(page, dbh="20.0", height="13.0")
    page.fill("#tag", tag)
    page.click("#save")
    page.wait_for_selector("#saved")

    page.evaluate("location.hash = '#/village'")
    ready(page, "village")
    page.fill("#household-code", tag.replace("-", " "))  # as read off the tag, spaces and all
    page.click("form.manual button[type=submit]")
    ready(page, "tree-measure")
    assert "20" in page.inner_text("main .meta")  # the last measurement, to compare against
    page.fill("#height", "13.2")
    page.fill("#dbh", "19.0")  # smaller than before: the app warns, the measurer may still save
    page.wait_for_selector("#warnings li")
    assert "比上次小" in page.inner_text("#warnings")
    page.click("#save")
    page.wait_for_selector("#saved")

    page.evaluate(f"location.hash = '#/household/{world.household_a}'")
    ready(page, "household")
    card = page.locator("#trees > li", has_text=tag)
    card.get_by_role("button", name="死亡").click()
    card.get_by_label("原因").select_option(label="干旱")
    card.get_by_role("button", name="确定：已死亡").click()
    page.wait_for_selector(f"#trees > li:has-text('{tag}') .badge.danger")
    ops = page.evaluate(
        """async () => (await (await import('/app/js/outbox.js')).pendingOps(100))
            .map((op) => [op.kind, op.base_version, op.payload.tag ?? op.payload.status ?? null])"""
    )
    assert ops == [
        ["tree.register", None, tag],
        ["tree.measure", 1, None],
        ["tree.measure", 2, None],
        ["tree.status", 3, "dead"],
    ]
    reason = page.evaluate(
        """async () => (await (await import('/app/js/outbox.js')).pendingOps(100))
            .find((op) => op.kind === 'tree.status').payload.reason"""
    )
    assert reason == "drought"  # why the tree is gone goes with it into the op log
    context.close()


def test_storage_nearly_full_is_on_every_screen(browser, site, app, world):
    """The browser reports 85 % of the site's quota used: the banner says so, not only the
    upload screen (the figure is the browser's own `navigator.storage.estimate()` answer,
    set here because a test cannot fill a real disk)."""
    context = phone(browser)
    context.add_init_script(
        "navigator.storage.estimate = async () => ({usage: 85 * 2 ** 20, quota: 100 * 2 ** 20});"
    )
    page = enrolled(context, site, app, world)
    page.wait_for_function("document.querySelector('#queue').textContent.includes('存储快满了')")
    page.evaluate("location.hash = '#/outbox'")
    ready(page, "outbox")
    page.wait_for_selector("#storage[data-tone=error]")
    assert "85%" in page.inner_text("#storage")
    context.close()
