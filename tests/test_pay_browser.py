"""A buyer on a 360 px phone in Debian's Chromium: bundle → buy 1 t → WeChat Pay QR → the
notification arrives (signed and encrypted as WeChat does) → the certificate appears on the
same page without a reload; the share card opens for a long press."""

import time
import urllib.request

import pytest

from tests import pay_world as pw
from tests.browser import PHONE, chromium, serving


@pytest.fixture
def wechat(app):
    key = pw.rsa_key()
    server = pw.WeChatPay(key)
    app.config.update(server.settings(key))
    yield server
    server.close()


def test_phone_buys_a_tonne_and_sees_the_certificate_without_reload(app, db, world, wechat):
    with app.app_context():
        bundle = pw.stocked(db, world)
    with serving(app) as site, chromium() as browser:
        context = browser.new_context(viewport=PHONE, has_touch=True, locale="zh-CN")
        page = context.new_page()
        started = time.monotonic()
        page.goto(f"{site}/bundles/{bundle['id']}")
        page.fill("input[name=phone]", "13812345678")
        page.click("text=预订并去付款")
        page.wait_for_url(f"{site}/orders/*")
        page.click("button[value=wechat_native]")
        page.wait_for_selector("img.pay-qr")
        assert page.evaluate("document.querySelector('img.pay-qr').naturalWidth") > 0
        width = page.evaluate("document.scrollingElement.scrollWidth")
        assert width <= PHONE["width"], f"the order page scrolls sideways at 360 px ({width})"
        page.evaluate("window.stayedOnThisPage = true")
        public_id = page.url.rsplit("/", 1)[1].split("#")[0]
        number = db.execute(
            """SELECT a.out_trade_no FROM payment_attempts a JOIN orders o
               ON o.id = a.order_id WHERE o.public_id = ?""",
            [public_id],
        ).fetchone()[0]
        wechat.pay(number)
        headers, body = wechat.notification(number)
        request = urllib.request.Request(  # noqa: S310 - the local site
            f"{site}/api/v1/payments/wechat/notify", data=body, headers=headers, method="POST"
        )
        with urllib.request.urlopen(request) as answer:  # noqa: S310 - the local site
            assert answer.status == 204
        page.wait_for_selector("#certificates .cert img", timeout=15_000)
        page.wait_for_function("document.querySelector('#certificates .cert img').naturalWidth > 0")
        elapsed = time.monotonic() - started
        assert page.evaluate("window.stayedOnThisPage") is True  # no reload
        assert "已付款并注销" in page.inner_text("#pay-status")
        assert page.is_hidden("#pay")
        cert_id = db.execute("SELECT id FROM certificates").fetchone()[0]
        assert cert_id in page.inner_text("#certificates")
        page.click("a.share")
        page.wait_for_selector("#share-card")
        page.wait_for_function("document.getElementById('share-card').naturalHeight > 0")
        size = page.evaluate(
            "[document.getElementById('share-card').naturalWidth,"
            " document.getElementById('share-card').naturalHeight]"
        )
        assert size == [1080, 1440]
        print(f"phone buyer, bundle page to certificate on screen: {elapsed:.1f} s")
        context.close()
