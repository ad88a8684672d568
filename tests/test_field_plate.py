"""The farmer at the door, in a real Chromium at 360 px (and 320 px with a large font): the
plate shows the household's trees with their photos and a small map, the money earned from
each sale; the last 4 phone digits open each transfer (bank card tail, ledger proof); then
the farmer turns on the "money sent" text message, and the next transfer sends one."""

import json

from server import farmer_sms, households, sms
from server.db import connect, get_db
from tests.browser import serious_violations, serving
from tests.conftest import BANK, PHONE
from tests.helpers_orders import later, paid_order, pay_everyone


def no_overflow(page) -> int:
    return page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def test_the_farmer_sees_trees_and_money_unlocks_payments_and_turns_on_sms(
    app,
    world,
    paid_household,
    browser,
):
    code, bundle = paid_household
    with serving(app) as site:
        # bypass_csp: only so the test can add axe-core and poll; the page's own policy holds
        context = browser.new_context(
            viewport={"width": 360, "height": 740}, locale="zh-CN", bypass_csp=True
        )
        page = context.new_page()
        page.goto(f"{site}/h/{code}")

        photos = page.locator("#trees img")
        assert photos.count() == 12
        page.wait_for_function(  # the first photos load; the rest as the farmer scrolls
            "document.querySelector('#trees img').complete"
            " && document.querySelector('#trees img').naturalWidth > 0"
        )
        for src in photos.evaluate_all("(imgs) => imgs.map((img) => img.src)"):
            answer = page.request.get(src)
            assert answer.status == 200 and answer.headers["content-type"] == "image/jpeg"
            assert b"Exif" not in answer.body()[:200]  # re-encoded: no metadata, no location
        assert page.locator("#trees svg circle").count() == 3  # the three trees with a location
        assert "另有 9 棵登记时没有定位" in page.inner_text("#trees figcaption")
        assert "杉木" in page.inner_text("#trees ol")
        assert "碳储量" in page.inner_text("#explain") and "碳汇吨" in page.inner_text("#explain")
        earned = page.locator("#timeline li.earned")
        assert earned.count() >= 1 and "本户应得 ¥" in earned.first.inner_text()
        assert page.locator("#timeline li.paid").count() == 0  # each transfer: owner only
        shown = page.inner_text("main")
        assert "已转入" not in shown and BANK[-4:] not in shown and PHONE[-4:] not in shown
        assert no_overflow(page) <= 0
        assert serious_violations(page) == [], "plate"

        page.fill("#phone-tail", PHONE[-4:])
        page.click("form.unlock button")
        page.wait_for_selector("#timeline li.paid")
        paid = page.inner_text("#timeline li.paid")
        assert f"已转入尾号 {BANK[-4:]} 的银行卡" in paid
        assert "转账凭证 …" in paid
        assert page.is_visible("#push-quiet")  # quiet hours: a switch, 44 px to tap
        assert (
            page.evaluate("getComputedStyle(document.querySelector('#push-quiet')).appearance")
            == "none"
        )
        assert page.locator(".push-optin label.check").bounding_box()["height"] >= 44
        assert serious_violations(page) == [], "plate unlocked"

        assert "短信通知未开启" in page.inner_text("#sms-state")
        page.click("#sms-on")
        page.wait_for_selector("#sms-state.on")
        assert page.is_visible("#sms-off")
        assert no_overflow(page) <= 0

        # 320 px with a large font: nothing sticks out, no cramped cells.
        small = browser.new_context(
            viewport={"width": 320, "height": 640}, locale="zh-CN", bypass_csp=True
        )
        narrow = small.new_page()
        small.new_cdp_session(narrow).send(
            "Page.setFontSizes", {"fontSizes": {"standard": 24, "fixed": 22}}
        )
        narrow.goto(f"{site}/h/{code}")
        assert no_overflow(narrow) <= 0
        assert narrow.locator("main table").count() == 0
        small.close()
        context.close()

    with app.app_context():
        db = get_db()
        household = households.get_household(code)
        assert farmer_sms.opted_in(db, household["id"])
        assert "household.sms_opt_in" in [
            row[0]
            for row in db.execute(
                "SELECT action FROM audit_log WHERE subject = ?", [f"household:{code}"]
            )
        ]
        # The next sale is paid T+1: the transfer queues one text message, sent by the worker.
        paid_order(db, bundle, 1)
        pay_everyone(db, later(2))
        queued = list(db.query("SELECT * FROM sms_messages"))
        assert [(m["template"], m["state"]) for m in queued] == [("farmer_money_sent", "pending")]
        assert PHONE not in json.dumps(queued, ensure_ascii=False)  # no phone in the queue
        assert farmer_sms.send_due(db) == {"sent": 1, "retry": 0, "failed": 0}
        message = sms.sender().last(PHONE, "farmer_money_sent")
        assert message is not None
        assert f"尾号{BANK[-4:]}" in message["text"] and "西山村" in message["text"]
        assert farmer_sms.send_due(db) == {"sent": 0, "retry": 0, "failed": 0}  # once
    with connect(app.config["DATABASE"]) as db:
        revealed = db.execute(
            "SELECT detail FROM audit_log WHERE action = 'pii.revealed' AND detail LIKE '%SMS%'"
        ).fetchall()
        assert len(revealed) == 1


def test_sms_needs_the_second_factor(app, client, world, paid_household):
    code, _bundle = paid_household
    token = client.get("/api/v1/auth/csrf").json["csrf_token"]
    refused = client.post(f"/h/{code}/sms", data={"sms": "on"}, headers={"X-CSRFToken": token})
    assert refused.status_code == 403  # a page, not the API: the error is shown as HTML
    assert "请先输入登记手机号的后 4 位" in refused.get_data(as_text=True)
    with app.app_context():
        assert not farmer_sms.opted_in(get_db(), households.get_household(code)["id"])
