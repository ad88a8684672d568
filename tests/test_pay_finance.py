"""Bank and digital-RMB transfers: the order page shows the payee, the exact amount and the
reference; the reservation lasts long enough; finance confirms on /finance/payments."""

import re

import pytest

from tests import pay_world as pw
from tests.conftest import bearer
from tests.helpers_auth import csrf_token, sign_in_form
from tests.helpers_orders import buy, choose, order_row

# pay_world's fixtures: a test that takes `bundle` starts from the stocked world
app, stocked_world = pw.app, pw.stocked_world

PAYEE = {
    "BANK_PAYEE_NAME": "武宁县四旁碳汇服务中心",
    "BANK_PAYEE_ACCOUNT": "6222 0202 0011 2233 445",
    "BANK_PAYEE_BANK": "中国工商银行武宁支行",
}


@pytest.fixture
def bundle(app, world):
    app.config.update(PAYEE)
    return world.built["bundle"]


def test_no_provider_configured_offers_transfer_only(app, client, bundle):
    public_id = buy(client, bundle)
    page = client.get(f"/orders/{public_id}").get_data(as_text=True)
    assert 'value="bank"' in page and 'value="digital_rmb"' in page
    assert "wechat" not in page and "alipay" not in page and "testpay" not in page
    refused = choose(client, public_id, "wechat_native")
    assert refused.status_code == 404


def test_bank_transfer_page_shows_payee_amount_and_reference(app, client, db, bundle):
    public_id = buy(client, bundle, tonnes=2)
    before = order_row(db, public_id)["expires_at"]
    chose = choose(client, public_id, "bank")
    assert chose.status_code == 303
    order = order_row(db, public_id)
    assert order["pay_method"] == "bank" and order["expires_at"] > before
    page = client.get(f"/orders/{public_id}").get_data(as_text=True)
    code = f"SP{order['id']:07d}"
    for text in (*PAYEE.values(), "¥200.00", code, "北京时间"):
        assert text in page
    assert re.search(r"预订保留到 \d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}（北京时间）", page)


def test_finance_confirms_a_transfer_on_the_screen(app, client, db, world, bundle):
    public_id = buy(client, bundle)
    choose(client, public_id, "digital_rmb")
    order = order_row(db, public_id)
    finance = client.application.test_client()
    signed_in = sign_in_form(finance, "finance")
    assert signed_in.status_code in (302, 303)
    code = f"SP{order['id']:07d}"
    screen = finance.get(f"/finance/payments?code={code}").get_data(as_text=True)
    assert "确认收款" in screen and code in screen and "¥100.00" in screen
    token = csrf_token(finance)
    wrong = finance.post(
        f"/finance/payments/{public_id}/confirm",
        data={
            "csrf_token": token,
            "method": "digital_rmb",
            "reference": "E-CNY-0001",
            "amount_fen": "9999",
        },
    )
    assert wrong.status_code == 303 and order_row(db, public_id)["status"] == "reserved"
    done = finance.post(
        f"/finance/payments/{public_id}/confirm",
        data={
            "csrf_token": token,
            "method": "digital_rmb",
            "reference": "E-CNY-0001",
            "amount_fen": "10000",
        },
    )
    assert done.status_code == 303
    paid = order_row(db, public_id)
    assert (paid["status"], paid["payment_method"], paid["payment_reference"]) == (
        "retired",
        "digital_rmb",
        "E-CNY-0001",
    )
    assert paid["confirmed_by"] == f"user:{world.user_ids['finance']}"
    assert "已确认收款" in finance.get("/finance/payments").get_data(as_text=True)
    buyer_page = client.get(f"/orders/{public_id}").get_data(as_text=True)
    assert "/verify/SPC-" in buyer_page


@pytest.mark.parametrize("path", ["/finance/payments", "/finance/refunds", "/finance/statements"])
@pytest.mark.parametrize("role", ["admin", "bureau", "enterprise", "verifier"])
def test_finance_screens_are_for_finance_only(client, world, path, role):
    assert client.get(path, headers=bearer(world.tokens[role])).status_code == 403
    assert client.get(path, headers=bearer(world.tokens["finance"])).status_code == 200


def test_demo_payments_reconcile_with_nothing_unmatched(app, client, db, world, bundle):
    from server.registry.payments_demo import add_payment_history

    with app.app_context():
        add_payment_history(db)
        add_payment_history(db)  # idempotent
    paid = db.execute(
        "SELECT payment_method, count(*) FROM orders WHERE paid_at IS NOT NULL GROUP BY 1"
    ).fetchall()
    assert sorted(paid) == [("alipay", 1), ("wechat", 2)]
    rows = db.execute("SELECT provider, line_count, matched, unmatched FROM statements").fetchall()
    assert sorted(rows) == [("alipay", 1, 1, 0), ("wechat", 2, 2, 0)]
    finance = bearer(world.tokens["finance"])
    for (statement_id,) in db.execute("SELECT id FROM statements").fetchall():
        page = client.get(f"/finance/statements/{statement_id}", headers=finance)
        assert 'data-unmatched="0"' in page.get_data(as_text=True)
    waiting = client.get("/finance/payments", headers=finance).get_data(as_text=True)
    assert waiting.count('class="confirm-row"') == 1
