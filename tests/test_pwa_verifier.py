"""The verifier's screens in a real Chromium: sign in, take the sample into the field, re-measure
blind with no signal, send once back in signal, decide."""

from server.db import connect, get_db
from tests import registry_world as rw
from tests.browser import serving
from tests.conftest import PASSWORD, bearer
from tests.helpers_pwa import check_accessible, phone, ready


def test_a_verifier_remeasures_a_sample_offline_and_decides(app, client, world, browser):
    with app.app_context():
        made = rw.grow_village(get_db(), world.village_b, households_count=1, trees_per_household=3)
    assigned = client.post(
        f"/api/v1/credit-calculations/{made['calculation_id']}/verification",
        headers=bearer(world.tokens["bureau"]),
        json={"verifier_id": world.user_ids["verifier"]},
    )
    assert assigned.status_code == 201, assigned.json
    sample_id = assigned.json["verification"]["id"]

    with serving(app) as site:
        context = phone(browser)
        page = context.new_page()
        page.goto(f"{site}/app/#/verify")
        ready(page, "verify")
        check_accessible(page, "verifier sign-in")
        page.fill("#username", "v" * 70)  # longer than any account name: the server says 422
        page.fill("#password", "any password")
        page.click("#signin")
        page.wait_for_selector("#signin-status[data-tone=error]")
        refused = page.inner_text("#signin-status")
        assert "没有登录成功：填写的内容有误" in refused and "密码" not in refused  # not a password
        page.fill("#username", "verifier")
        page.fill("#password", "wrong password")
        page.click("#signin")
        page.wait_for_function(
            "document.querySelector('#signin-status').innerText.includes('密码')"
        )
        assert page.inner_text("#signin-status") == "用户名或密码不对。"
        page.fill("#password", PASSWORD)
        page.click("#signin")
        page.wait_for_selector("#samples li")
        assert "已复测 0 / 3 棵" in page.inner_text("#samples")
        check_accessible(page, "verifier samples")

        # In the field with no signal: the sample was kept on the phone.
        context.set_offline(True)
        page.reload()
        ready(page, "verify")
        page.click("#samples a")
        ready(page, "verify-sample")
        assert page.is_disabled("#decide")
        for n in range(3):
            page.locator("#sample-trees > li[data-state=todo] a.button").first.click()
            ready(page, "verify-remeasure")
            shown = page.evaluate(  # every word but the codes (the village code holds "360")
                "[...document.querySelectorAll('main :is(h1, h2, p, label):not(.code)')]"
                ".map((el) => el.innerText).join(' ')"
            )
            assert "36" not in shown and "20.0" not in shown  # blind: the claim is not shown
            if n == 0:
                check_accessible(page, "blind re-measurement")
            page.fill("#verify-dbh", "36.0")  # what the measurer claimed: the ratio is 1
            page.fill("#verify-height", "20.0")
            page.click("#verify-save")
            ready(page, "verify-sample")
        assert page.locator("#sample-trees > li[data-state=pending]").count() == 3
        with connect(app.config["DATABASE"]) as server_db:
            assert server_db.execute("SELECT count(*) FROM remeasurements").fetchone()[0] == 0

        # Signal: the re-measurements go, each once; then the decision.
        context.set_offline(False)
        page.wait_for_function(
            "document.querySelectorAll('#sample-trees > li[data-state=sent]').length === 3",
            timeout=60_000,
        )
        page.wait_for_selector("#decide:not([disabled])")
        page.fill("#note", "样本全部复测完毕。")
        page.click("#decide")
        page.wait_for_selector("#decision-status[data-tone=ok]")
        # 3 trees all within tolerance: the ratio estimator's lower bound on so small a
        # sample still issues a little under 100 % (issue 13), so "partial" is expected
        assert "3 棵合格，0 棵不合格" in page.inner_text("#decision-status")
        context.close()

    with connect(app.config["DATABASE"]) as server_db:
        rows = server_db.execute(
            "SELECT count(*), count(DISTINCT tree_id), sum(within_tolerance) FROM remeasurements"
            " WHERE verification_id = ?",
            [sample_id],
        ).fetchone()
        assert tuple(rows) == (3, 3, 3)
        status = server_db.execute(
            "SELECT status FROM verifications WHERE id = ?", [sample_id]
        ).fetchone()[0]
        assert status in ("passed", "partial")  # never "failed": every tree agreed
