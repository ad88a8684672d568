"""A village's baseline check in the field, in a real Chromium at 360 px: the verifier's
phone lists it beside the period samples, the registered trees are re-measured blind (one
with no signal, sent once when there is), and the check is decided from the phone."""

from server.db import connect, get_db
from tests import registry_world as rw
from tests.browser import serving
from tests.conftest import PASSWORD, bearer
from tests.helpers_pwa import check_accessible, phone, ready


def test_the_verifier_checks_a_villages_baselines_from_the_phone(
    app,
    client,
    world,
    browser,
):
    with app.app_context():
        rw.grow_village(get_db(), world.village_b, households_count=1, trees_per_household=3)
    assigned = client.post(
        f"/api/v1/villages/{world.village_b}/baseline-checks",
        headers=bearer(world.tokens["bureau"]),
        json={"verifier_id": world.user_ids["verifier"]},
    )
    assert assigned.status_code == 201, assigned.json
    check_id = assigned.json["baseline_check"]["id"]
    with serving(app) as site:
        context = phone(browser)
        page = context.new_page()
        page.goto(f"{site}/app/#/verify")
        ready(page, "verify")
        page.fill("#username", "verifier")
        page.fill("#password", PASSWORD)
        page.click("#signin")
        page.wait_for_selector("#samples li")
        listed = page.inner_text("#samples")
        assert f"基线复核 #{check_id}" in listed and "登记时的测量" in listed

        page.click(f"#samples a[href='#/verify/b{check_id}']")
        ready(page, "verify-sample")
        assert "检查登记时的数值有没有偏小" in page.inner_text("main")
        check_accessible(page, "baseline check")
        cards = page.locator("#sample-trees > li")
        assert cards.count() == 3
        trees = [cards.nth(n).get_attribute("data-tree") for n in range(3)]

        context.set_offline(True)  # the first tree with no signal
        for index, tree in enumerate(trees):
            if index == 1:
                context.set_offline(False)
            page.locator(f"#sample-trees > li[data-tree='{tree}'] a.button").click()
            ready(page, "verify-remeasure")
            page.fill("#verify-dbh", "3.0")
            page.fill("#verify-height", "2.0")
            page.click("#verify-save")
            ready(page, "verify-sample")
        page.wait_for_selector("#decide:not([disabled])", timeout=60_000)
        page.click("#decide")
        page.wait_for_selector("#decision-status[data-tone=ok]")
        assert "基线复核通过" in page.inner_text("#decision-status")
        assert page.locator("#report-link").count() == 0  # a baseline check has no PDF
        context.close()

    with connect(app.config["DATABASE"]) as db:
        rows = db.execute(
            "SELECT tree_id, outcome, dbh_mm, height_cm FROM baseline_remeasurements "
            "WHERE check_id = ? ORDER BY tree_id",
            [check_id],
        ).fetchall()
        status = db.execute(
            "SELECT status, excess_ppm FROM baseline_checks WHERE id = ?", [check_id]
        ).fetchone()
    assert [tuple(row) for row in rows] == [(tree, "measured", 30, 200) for tree in sorted(trees)]
    assert tuple(status) == ("passed", 0)
