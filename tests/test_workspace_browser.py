"""Each staff role in a real Chromium on a 360 px phone: signs in, lands on its home and
does its main task by clicking only; every page it passes fits the screen and passes axe."""

import io

from openpyxl import load_workbook

from server.db import first, get_db
from server.registry import orders
from tests import registry_world as rw
from tests.browser import PHONE, serving
from tests.workspace_helpers import fits_and_passes_axe, nav, signed_in

CASE = "（2026）赣0423刑初12号"


def test_admin_creates_a_bundle_issues_a_verified_period_and_publishes(app, world, browser):
    with app.app_context():
        db = get_db()
        grown = rw.grow_village(db, world.village_b, households_count=2, trees_per_household=20)
        verified = rw.verify(db, grown["calculation_id"], world.user_ids["verifier"])
    with serving(app) as url:
        page = signed_in(browser, url, "admin")
        assert page.url == f"{url}/admin"
        assert "平台管理员" in page.inner_text("header")
        fits_and_passes_axe(page)
        for label in ("村庄", "农户", "手机", "待复核", "碳汇核算", "核查", "方法学"):
            nav(page, label)

        nav(page, "碳汇包")
        page.click("text=新建碳汇包")
        fits_and_passes_axe(page)
        page.fill("input[name=name]", "西山村四旁碳汇")
        page.click("button:has-text('创建草稿')")
        page.wait_for_selector("text=已创建碳汇包草稿。")
        fits_and_passes_axe(page)

        nav(page, "签发")
        card = page.locator("section.card", has=page.locator("button:has-text('签发')"))
        card.locator("select[name=bundle_id]").select_option(label=None, index=0)
        card.locator("button:has-text('签发')").click()
        page.wait_for_selector("text=已签发进入西山村四旁碳汇。")
        fits_and_passes_axe(page)

        nav(page, "碳汇包")
        page.click("a:has-text('西山村四旁碳汇')")
        page.click("button:has-text('发布')")
        page.wait_for_selector("text=已发布，开始出售。")
        fits_and_passes_axe(page)
    with app.app_context():
        db = get_db()
        bundle = first(db, "SELECT * FROM bundles WHERE name = '西山村四旁碳汇'")
        assert bundle["status"] == "on_sale"
        issued = first(db, "SELECT * FROM issuances WHERE verification_id = ?", [verified["id"]])
        assert issued["bundle_id"] == bundle["id"]


def test_finance_confirms_a_bank_payment(app, world, browser):
    with app.app_context():
        db = get_db()
        bundle, _, _ = rw.stocked_bundle(
            db, world.user_ids["verifier"], households_count=2, trees_per_household=12
        )
        enterprise = db["users"].get(world.user_ids["enterprise"])
        made = orders.choose_transfer(db, rw.order(db, bundle["id"], 1, enterprise), "bank")
    with serving(app) as url:
        page = signed_in(browser, url, "finance")
        assert page.url == f"{url}/finance"
        assert "财务" in page.inner_text("header")
        fits_and_passes_axe(page)
        page.click("text=笔银行或数字人民币转账待确认收款")
        page.wait_for_load_state()
        fits_and_passes_axe(page)
        form = page.locator(f"form[data-order='{made['public_id']}']")
        form.locator("input[name=reference]").fill("ICBC-20261207-0042")
        form.locator("button[type=submit]").click()
        page.wait_for_selector("text=已确认收款")
        fits_and_passes_axe(page)
        nav(page, "分成结算批次")
        nav(page, "发票申请")
    with app.app_context():
        paid = first(get_db(), "SELECT * FROM orders WHERE id = ?", [made["id"]])
        assert (paid["status"], paid["payment_reference"]) == ("held", "ICBC-20261207-0042")


def test_enterprise_retires_held_tonnes_with_a_case_number(app, world, browser):
    with app.app_context():
        db = get_db()
        bundle, _, _ = rw.stocked_bundle(
            db, world.user_ids["verifier"], households_count=2, trees_per_household=12
        )
        enterprise = db["users"].get(world.user_ids["enterprise"])
        held = orders.confirm_payment(
            db, rw.order(db, bundle["id"], 1, enterprise), "bank", "ICBC-HELD-1", "user:3"
        )
    with serving(app) as url:
        page = signed_in(browser, url, "enterprise")
        assert page.url == f"{url}/enterprise"
        fits_and_passes_axe(page)
        page.click("text=吨碳汇已持有、待注销")
        page.wait_for_load_state()
        fits_and_passes_axe(page)
        page.fill("input[name=beneficiary]", "某化工有限公司")
        page.fill("input[name=case_number]", CASE)
        page.click("button:has-text('注销并生成证书')")
        page.wait_for_url("**/verify/SPC-*")
        assert CASE in page.inner_text("main")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        nav(page, "发票")
    with app.app_context():
        cert = first(get_db(), "SELECT * FROM certificates WHERE order_id = ?", [held["id"]])
        assert (cert["reason"], cert["case_number"]) == ("司法生态赔偿", CASE)


def test_bureau_opens_a_household_from_the_map_and_exports_the_month(app, world, browser):
    with app.app_context():
        db = get_db()
        bundle, _, grown = rw.stocked_bundle(  # a new village, placed by its coordinates
            db,
            world.user_ids["verifier"],
            "360423101203",
            households_count=2,
            trees_per_household=12,
        )
        orders.confirm_payment(db, rw.order(db, bundle["id"], 1), "bank", "ICBC-MAP-1", "user:3")
    with serving(app) as url:
        page = signed_in(browser, url, "bureau")
        assert page.url == f"{url}/bureau"
        assert "县农业农村局" in page.inner_text("header")
        fits_and_passes_axe(page)
        nav(page, "各村进度")
        nav(page, "账本核对")
        page.click("button:has-text('现在核对')")
        page.wait_for_selector("text=核对结果")
        fits_and_passes_axe(page)

        nav(page, "地图")
        page.click(f"svg.map a[href='/bureau/villages/{grown['village']['code']}']")
        page.wait_for_load_state()
        fits_and_passes_axe(page)
        household = grown["households"][0]
        page.click(f"a[href='/bureau/households/{household}']")
        page.wait_for_load_state()
        assert household in page.inner_text("main")
        fits_and_passes_axe(page)

        nav(page, "月度趋势")
        with page.expect_download() as download:
            page.click("text=Excel 表格")
        assert download.value.suggested_filename == "sipang-360423-months.xlsx"
        with open(download.value.path(), "rb") as saved:
            sheet = load_workbook(io.BytesIO(saved.read())).active
        assert sheet["A1"].value == "武宁县四旁碳汇月度趋势"
        assert sheet["A3"].value == "月份"
