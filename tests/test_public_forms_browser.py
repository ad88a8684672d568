"""The door plate's unlock form and the bundle page's buy form in Debian's Chromium now that
the pages carry no CSRF token (tests/test_public_forms.py): reading them sets no cookie; with
scripts the form fetches its token when used and posts once (the buy form with the buyer's own
request id); without scripts the farmer is asked to click again."""

from tests import pay_world as pw
from tests.browser import serving
from tests.conftest import PHONE


def test_the_unlock_form_fetches_its_token_when_used_and_posts_once(
    app,
    world,
    paid_household,
    browser,
):
    code, _ = paid_household
    with serving(app) as site:
        context = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN")
        page = context.new_page()
        posts = []
        page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
        page.goto(f"{site}/h/{code}")
        assert context.cookies() == []  # reading the plate set no cookie

        page.fill("#phone-tail", PHONE[-4:])
        page.click("form.unlock button")
        page.wait_for_selector("#timeline li.paid")

        assert [url.split("#")[0] for url in posts] == [f"{site}/h/{code}/unlock"]
        assert [c["name"] for c in context.cookies()] == ["session"]


def test_without_scripts_the_unlock_form_takes_a_second_click(
    app,
    world,
    paid_household,
    browser,
):
    code, _ = paid_household
    with serving(app) as site:
        context = browser.new_context(java_script_enabled=False, locale="zh-CN")
        page = context.new_page()
        page.goto(f"{site}/h/{code}")

        page.fill("#phone-tail", PHONE[-4:])
        page.click("form.unlock button")
        page.wait_for_selector("form.unlock .error")
        assert "请再点一次" in page.inner_text("form.unlock .error")
        assert page.locator("#timeline li.paid").count() == 0  # nothing was checked
        page.fill("#phone-tail", PHONE[-4:])
        page.click("form.unlock button")
        page.wait_for_selector("#timeline li.paid")


def test_the_buy_form_gets_its_own_request_id_and_token_when_used(
    app,
    db,
    world,
    browser,
):
    with app.app_context():
        bundle = pw.stocked(db, world)
    with serving(app) as site:
        context = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN")
        page = context.new_page()
        page.goto(f"{site}/bundles/{bundle['id']}")
        page.wait_for_function("document.querySelector('input[name=request_id]').value !== ''")
        assert context.cookies() == []
        request_id = page.input_value("input[name=request_id]")
        assert len(request_id) == 32 and int(request_id, 16) >= 0

        page.click("text=预订并去付款")
        page.wait_for_url(f"{site}/orders/*")

        stored = db.execute("SELECT request_id FROM orders ORDER BY id DESC").fetchone()[0]
        assert stored == request_id
