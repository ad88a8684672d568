"""The verifier in the field, in a real Chromium at 360 px: a sampled tree reached by its
distance and bearing from the phone's position, recorded as "找不到" with no signal, sent once
when there is signal; the sample stays open on the phone afterwards."""

from server.db import connect, get_db
from tests import registry_world as rw
from tests.browser import serving
from tests.conftest import PASSWORD, bearer
from tests.helpers_pwa import check_accessible, phone, ready

HERE = {"latitude": 29.2611, "longitude": 115.0934, "accuracy": 6}
# 0.0009° of latitude is 100 m: the first tree due north, the second about 150 m due east.
NORTH = (29.2620, 115.0934)
EAST = (29.2611, 115.094946)


def report_text(page) -> str:
    """The first bytes of the PDF the report link opens (the phone's own copy)."""
    return page.evaluate(
        """async () => {
            const link = document.querySelector('#report-link');
            const blob = await (await fetch(link.href)).blob();
            return (await blob.slice(0, 8).text());
        }"""
    )


def assign_sample(app, client, world) -> tuple[int, list[str]]:
    """A sample of village B's three trees for the verifier, placed around HERE."""
    with app.app_context():
        db = get_db()
        made = rw.grow_village(db, world.village_b, households_count=1, trees_per_household=3)
    assigned = client.post(
        f"/api/v1/credit-calculations/{made['calculation_id']}/verification",
        headers=bearer(world.tokens["bureau"]),
        json={"verifier_id": world.user_ids["verifier"]},
    )
    assert assigned.status_code == 201, assigned.json
    sample_id = assigned.json["verification"]["id"]
    with connect(app.config["DATABASE"]) as db:
        trees = [
            row[0]
            for row in db.execute(
                "SELECT tree_id FROM verification_samples WHERE verification_id = ? "
                "ORDER BY tree_id",
                [sample_id],
            )
        ]
        for tree_id, (lat, lon) in zip(trees, [NORTH, EAST, EAST], strict=False):
            db.execute(
                "UPDATE measurements SET latitude = ?, longitude = ? WHERE tree_id = ?",
                [lat, lon, tree_id],
            )
        db.commit()
    return sample_id, trees


def test_a_sampled_tree_is_reached_by_distance_and_bearing_and_not_found(
    app,
    client,
    world,
    browser,
):
    sample_id, trees = assign_sample(app, client, world)
    north_tree = trees[0]
    with serving(app) as site:
        context = phone(browser, geolocation=HERE, permissions=["geolocation"])
        page = context.new_page()
        page.goto(f"{site}/app/#/verify")
        ready(page, "verify")
        page.fill("#username", "verifier")
        page.fill("#password", PASSWORD)
        page.click("#signin")
        page.wait_for_selector("#samples li")

        context.set_offline(True)  # in the field
        page.click("#samples a")
        ready(page, "verify-sample")
        page.wait_for_selector("#verify-gps[data-tone=ok]")
        card = page.locator(f"#sample-trees > li[data-tree='{north_tree}']")
        assert card.locator(".way").inner_text() == "在你的北方 0°，距离 100 米"
        photo = card.locator("img.tree-photo").get_attribute("src")
        assert photo.endswith(f"/trees/{north_tree}.jpg")  # its photo, to know it when found
        served = client.get(photo)
        assert (served.status_code, served.mimetype) == (200, "image/jpeg")
        assert page.locator("svg.map circle.map-todo").count() == 3
        assert page.locator("svg.map circle.map-me").count() == 1
        check_accessible(page, "sample with map")

        card.locator("a.button").click()
        ready(page, "verify-remeasure")
        page.wait_for_selector("#tree-way[data-tone=ok]")
        assert page.inner_text("#tree-way") == "在你的北方 0°，距离 100 米"
        assert page.locator("#tree-arrow .arrow").count() == 1
        check_accessible(page, "finding a sampled tree")

        # Walked over there: the tree is gone. "找不到", after a confirmation.
        page.click("#outcomes button[data-outcome=not_found]")
        assert "找不到" in page.inner_text("#outcome-confirm")
        page.click("#outcome-yes")
        ready(page, "verify-sample")
        card = page.locator(f"#sample-trees > li[data-tree='{north_tree}']")
        assert card.get_attribute("data-state") == "pending"
        assert "找不到" in card.inner_text()
        queued = page.evaluate(
            """async () => (await (await import('/app/js/outbox.js')).remeasurements())
                .map(({client_id, measured_at, created_at, ...rest}) => rest)"""
        )
        assert queued == [
            {
                "verification_id": sample_id,
                "tree_id": north_tree,
                "outcome": "not_found",
                "state": "pending",
                "error": None,
            }
        ]

        # The second tree: measured, DBH and height; a height under 1.3 m is refused here.
        page.locator(f"#sample-trees > li[data-tree='{trees[1]}'] a.button").click()
        ready(page, "verify-remeasure")
        page.wait_for_selector("#tree-way[data-tone=ok]")
        assert page.inner_text("#tree-way") == "在你的东方 90°，距离 150 米"
        page.fill("#verify-dbh", "36.1")
        page.fill("#verify-height", "1.0")
        page.click("#verify-save")
        assert "1.3" in page.inner_text("#verify-error")
        page.fill("#verify-height", "20.2")
        page.click("#verify-save")
        ready(page, "verify-sample")

        context.set_offline(False)  # signal: both go, once each
        page.wait_for_function(
            "document.querySelectorAll('#sample-trees > li[data-state=sent]').length === 2",
            timeout=60_000,
        )
        page.locator(f"#sample-trees > li[data-tree='{trees[2]}'] a.button").click()
        ready(page, "verify-remeasure")
        page.fill("#verify-dbh", "36.0")
        page.fill("#verify-height", "20.0")
        page.click("#verify-save")
        ready(page, "verify-sample")
        page.wait_for_selector("#decide:not([disabled])", timeout=60_000)
        page.click("#decide")
        page.wait_for_selector("#decision-status[data-tone]:not([data-tone=info])")
        # The report, from the verifier's screen right after the decision.
        page.wait_for_selector("#report-link")
        assert page.inner_text("#report-link") == "查看核查报告（PDF）"
        assert report_text(page).startswith("%PDF")

        # Decided: the server no longer lists the sample, the phone keeps it with the outcome.
        page.evaluate("location.hash = '#/verify'")
        ready(page, "verify")
        page.click("#refresh-samples")
        page.wait_for_selector("#samples-status[data-tone=ok]")
        assert "已提交结论" in page.inner_text("#samples")
        context.set_offline(True)  # back in the field: the sample and its report stay at hand
        page.click("#samples a")
        ready(page, "verify-sample")
        assert page.is_visible("#decided") and page.locator("#decide").count() == 0
        assert "找不到" in page.inner_text(f"#sample-trees > li[data-tree='{north_tree}']")
        page.wait_for_selector("#report-link")
        assert report_text(page).startswith("%PDF")
        context.close()

    with connect(app.config["DATABASE"]) as db:
        rows = db.execute(
            "SELECT tree_id, outcome, dbh_mm, height_cm FROM remeasurements "
            "WHERE verification_id = ? ORDER BY tree_id",
            [sample_id],
        ).fetchall()
    assert [tuple(row) for row in rows] == [
        (north_tree, "not_found", None, None),
        (trees[1], "measured", 361, 2020),
        (trees[2], "measured", 360, 2000),
    ]
