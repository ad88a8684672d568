"""The admin moves a household to another village in Chromium on a 360 px phone, by clicking
from its home: the household page's form, the confirmation, the new code; each page fits
the screen and passes axe."""

from server.db import first, get_db
from tests import registry_world as rw
from tests.browser import PHONE, serving
from tests.workspace_helpers import fits_and_passes_axe, nav, signed_in


def test_admin_moves_a_household_to_another_village_by_clicking(app, world, browser):
    with app.app_context():
        db = get_db()
        _, _, grown = rw.stocked_bundle(db, world.user_ids["verifier"], trees_per_household=6)
        old = grown["households"][0]
    with serving(app) as url:
        page = signed_in(browser, url, "admin")
        assert page.url == f"{url}/admin"
        nav(page, "农户")
        page.select_option("select[name=village]", label="西山村")
        page.click("button:has-text('查找')")
        page.wait_for_load_state()
        page.click(f"a:has-text('{old}')")
        page.wait_for_load_state()
        fits_and_passes_axe(page)

        page.select_option("select[name=village]", label=f"长水村（{world.village_a}）")
        page.click("button:has-text('下一步：核对迁移')")
        page.wait_for_selector("text=迁移后会发生什么")
        fits_and_passes_axe(page)
        assert "6 棵树随户迁入长水村" in page.inner_text("main")
        page.click("button:has-text('确认迁移')")
        page.wait_for_selector("text=已迁入长水村")
        fits_and_passes_axe(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert "迁移记录" in page.inner_text("main")

    with app.app_context():
        moved = first(get_db(), "SELECT * FROM households WHERE ledger_key = ?", [old[:17]])
    assert moved["code"].startswith(world.village_a + "-")
    assert page.url == f"{url}/admin/households/{moved['code']}"
