"""Web Push in a real Chromium: a push message delivered to the app's service worker over CDP
(`ServiceWorker.deliverPushMessage`) shows the notification the server's payload describes,
and its click opens the screen named in it. Chromium cannot subscribe here (its vendor's push
service is unreachable), so the server side is covered by tests/test_push.py's decrypting
endpoint; the button's own paths (failed, denied) are checked here."""

import json
import time

from server.db import get_db
from server.push.kinds import KINDS
from tests import registry_world as rw
from tests.browser import open_phone, serving
from tests.conftest import PASSWORD, bearer
from tests.helpers_pwa import WAIT_MS, enrol, phone, ready


def poll(page_or_worker, script: str, what: str):
    """Evaluate `script` until it returns something truthy; that value."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while not (value := page_or_worker.evaluate(script)):
        assert time.monotonic() < deadline, f"waited for {what}"
        time.sleep(0.1)
    return value


def registration_id(cdp, scope: str) -> str:
    """The service worker registration of `scope`, as CDP's ServiceWorker domain names it."""
    found: dict[str, str] = {}

    def seen(event):
        for registration in event["registrations"]:
            if not registration.get("isDeleted"):
                found[registration["scopeURL"]] = registration["registrationId"]

    cdp.on("ServiceWorker.workerRegistrationUpdated", seen)
    cdp.send("ServiceWorker.enable")
    deadline = time.monotonic() + WAIT_MS / 1000
    while scope not in found:
        assert time.monotonic() < deadline, f"no registration for {scope}: {found}"
        cdp.send("Runtime.evaluate", {"expression": "1"})  # lets events arrive
        time.sleep(0.05)
    return found[scope]


def deliver(cdp, page, site: str, registration: str, message: dict) -> list[dict]:
    """Deliver `message` as a push and return the notifications then shown. Chromium now and
    then drops the first message CDP delivers to a fresh profile, so it is sent again after
    2 s without a notification (a shown one replaces its namesake: same tag)."""
    deadline = time.monotonic() + WAIT_MS / 1000
    params = {"origin": site, "registrationId": registration, "data": json.dumps(message)}
    while True:
        cdp.send("ServiceWorker.deliverPushMessage", params)
        for _ in range(20):
            shown = page.evaluate(NOTIFICATIONS)
            if shown:
                return shown
            time.sleep(0.1)
        assert time.monotonic() < deadline, "no notification was shown"


NOTIFICATIONS = """async () => (await navigator.serviceWorker.ready.then((r) =>
    r.getNotifications())).map((n) => ({title: n.title, body: n.body, url: n.data.url,
    icon: n.icon, tag: n.tag}))"""


def test_a_push_shows_the_notice_and_its_click_opens_the_screen(
    app,
    world,
    tmp_path,
    playwright,
):
    payload = KINDS["record_flagged"].payload(
        {
            "household_code": world.household_a,
            "household_seq": "0001",
            "species": "杉木",
            "reason": "缺少照片",
        }
    )
    with serving(app) as site:
        phone = open_phone(playwright, tmp_path / "phone")
        phone.grant_permissions(["notifications"], origin=site)
        page = phone.pages[0]
        enrol(page, site, app, world)
        page.wait_for_function("navigator.serviceWorker.controller !== null")
        page.wait_for_function("Notification.permission === 'granted'")
        cdp = phone.new_cdp_session(page)
        registration = registration_id(cdp, f"{site}/app/")

        (shown,) = deliver(cdp, page, site, registration, payload)
        target = f"{site}/app/#/household/{world.household_a}"
        assert shown == {
            "title": "记录需要复核",
            "body": "第 0001 户的一棵杉木被标记：缺少照片",
            "url": target,
            "icon": f"{site}/app/icons/icon-192.png",
            "tag": target,
        }

        # The click: the handler's own function, run in the service worker with the shown
        # notification (a headless browser has no notification to click on).
        (worker,) = [w for w in phone.service_workers if w.url == f"{site}/app/sw.js"]
        worker.evaluate(
            """async () => {
                const [shown] = await self.registration.getNotifications();
                shown.close();
                await openNotification(notificationUrl(shown.data.url));
            }"""
        )
        page.wait_for_url(target)
        ready(page, "household")
        assert world.household_a in page.inner_text("main")
        assert poll(page, f"({NOTIFICATIONS})().then((n) => n.length === 0)", "closed")

        # Another site's address in a payload is never opened: the app's start instead.
        foreign_message = {"title": "x", "body": "y", "url": "https://evil.example/"}
        (foreign,) = deliver(cdp, page, site, registration, foreign_message)
        assert foreign["url"] == f"{site}/app/"
        phone.close()


def test_the_notification_button_explains_what_happened(
    app,
    world,
    tmp_path,
    playwright,
):
    with serving(app) as site:
        phone = open_phone(playwright, tmp_path / "phone")
        phone.grant_permissions(["notifications"], origin=site)
        page = phone.pages[0]
        enrol(page, site, app, world)
        page.wait_for_function("Notification.permission === 'granted'")
        page.goto(f"{site}/app/#/outbox")
        ready(page, "outbox")
        assert "记录被标记需要复核" in page.inner_text(".push")
        assert page.inner_text("#push-status") == ""  # nothing said before a tap
        page.click("#push-enable")
        page.wait_for_selector("#push-status[data-tone=error]", timeout=WAIT_MS)
        assert page.inner_text("#push-status").startswith("开启通知失败")  # no push service
        assert not page.is_disabled("#push-enable")

        # Blocked (headless Chromium's answer without a grant): said at once, and on a tap.
        # Not granted: a headless browser's prompt answers at once ("denied", or closed).
        phone.clear_permissions()
        page.wait_for_function("Notification.permission !== 'granted'")
        page.click("#push-enable")
        page.wait_for_function(
            "['通知已被禁止', '没有开启通知'].some((s) =>"
            " document.querySelector('#push-status').textContent.startsWith(s))"
        )
        # Blocked for the site: said as soon as the screen opens, before any tap.
        if page.evaluate("Notification.permission") == "denied":
            page.goto(f"{site}/app/#/village")
            ready(page, "village")
            page.goto(f"{site}/app/#/outbox")
            ready(page, "outbox")
            assert page.inner_text("#push-status").startswith("通知已被禁止")
        phone.close()


def test_a_sample_notice_opens_the_sample_even_before_the_phone_has_it(
    app,
    client,
    world,
    browser,
):
    with serving(app) as site:
        page = phone(browser).new_page()
        page.goto(f"{site}/app/#/verify")
        ready(page, "verify")
        page.fill("#username", "verifier")
        page.fill("#password", PASSWORD)
        page.click("#signin")
        page.wait_for_selector("#refresh-samples")  # signed in, no sample yet
        with app.app_context():
            grown = rw.grow_village(get_db(), world.village_b, trees_per_household=3)
        assigned = client.post(
            f"/api/v1/credit-calculations/{grown['calculation_id']}/verification",
            headers=bearer(world.tokens["bureau"]),
            json={"verifier_id": world.user_ids["verifier"]},
        )
        sample = assigned.json["verification"]
        message = KINDS["sample_assigned"].payload(
            {"verification_id": sample["id"], "village": "西山村", "trees": 3}
        )
        page.goto(f"{site}{message['url']}")  # where the notification's click leads
        ready(page, "verify-sample")
        assert "西山村" in page.inner_text("main")


def test_the_door_plate_page_offers_payment_notices_after_the_second_factor(
    app,
    world,
    tmp_path,
    playwright,
):
    with serving(app) as site:
        phone = open_phone(playwright, tmp_path / "phone")
        page = phone.pages[0]
        page.goto(f"{site}/h/{world.household_a}")
        assert page.locator("#push-enable").count() == 0  # not before the second factor
        page.fill("#phone-tail", "5678")
        page.click("#payments button[type=submit]")
        page.wait_for_selector("#push-enable")
        assert page.is_checked("#push-quiet")
        # Headless Chromium blocks notifications unless granted: said at once, and on a tap.
        page.wait_for_function(
            "document.querySelector('#push-status').textContent.startsWith('通知已被禁止')"
        )
        page.evaluate("document.querySelector('#push-status').textContent = ''")
        page.click("#push-enable")
        page.wait_for_function(
            "document.querySelector('#push-status').textContent.startsWith('通知已被禁止')"
        )
        phone.close()
