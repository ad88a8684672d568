"""The dashboards in a real Chromium: the bureau's page follows a new sale live (Socket.IO,
no reload); the village page and the farmer's plate on a 360 px phone without script."""

from server.db import get_db
from tests import registry_world as rw
from tests.browser import PHONE, chromium, serious_violations, serving
from tests.conftest import PASSWORD
from tests.helpers_orders import paid_order

VILLAGE_B = "360423101202"


def _yuan(fen: int) -> str:
    return f"¥{fen // 100:,}.{fen % 100:02d}"


def _sell(app, bundle_id: int, tonnes: int) -> dict:
    with app.app_context():
        db = get_db()
        return paid_order(db, bundle_id, tonnes)


def _stock(app, world) -> dict:
    with app.app_context():
        bundle, _, _ = rw.stocked_bundle(
            get_db(), world.user_ids["verifier"], households_count=3, trees_per_household=5
        )
    return bundle


def test_the_bureau_sees_a_new_sale_and_its_accruals_appear_without_reload(app, world):
    bundle = _stock(app, world)
    first = _sell(app, bundle["id"], 2)
    with serving(app) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="zh-CN")
        page.goto(f"{url}/login")
        page.fill("input[name=username]", "bureau")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(f"{url}/bureau")
        page.wait_for_selector("#live-state:has-text('已连接')")
        accrued = page.locator("[data-figure=accrued]")
        assert accrued.inner_text() == _yuan(first["farmers_fen"])
        page.evaluate("window.__sameDocument = true")  # gone if the page reloads

        second = _sell(app, bundle["id"], 3)

        total = _yuan(first["farmers_fen"] + second["farmers_fen"])
        page.wait_for_function(
            "want => document.querySelector('[data-figure=accrued]').textContent === want",
            arg=total,
            timeout=15_000,
        )
        assert page.evaluate("window.__sameDocument") is True
        assert "5 吨" in page.locator("[data-figure=sold]").inner_text()
        assert serious_violations(page) == []


def test_village_page_and_plate_on_a_phone_without_script(app, world):
    bundle = _stock(app, world)
    _sell(app, bundle["id"], 1)
    with app.app_context():
        code = (
            get_db()
            .execute(
                "SELECT h.code FROM households h JOIN villages v ON v.id = h.village_id "
                "WHERE v.code = ? ORDER BY h.seq LIMIT 1",
                [VILLAGE_B],
            )
            .fetchone()[0]
        )
    with serving(app) as url, chromium() as browser:
        context = browser.new_context(viewport=PHONE, java_script_enabled=False, locale="zh-CN")
        page = context.new_page()
        page.goto(f"{url}/v/{VILLAGE_B}")
        assert "已售出" in page.inner_text("main")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.goto(f"{url}/h/{code}")
        assert page.locator("input[name=phone_tail]").is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        context.close()
        checked = browser.new_page(viewport=PHONE)  # axe needs script
        for path in (f"/v/{VILLAGE_B}", "/c/360423", f"/h/{code}"):
            checked.goto(url + path)
            assert serious_violations(checked) == [], path
