"""WeChat Pay API v3 end to end against a local server speaking its protocol: the SDK opens
the order, the test signs and encrypts the notification as WeChat does, the app verifies
and applies it; forgeries are refused, replays and late payments change nothing twice."""

import io
import json
import time
import uuid

import pytest
import zxingcpp
from PIL import Image

from server.registry import orders
from tests import pay_world as pw
from tests.conftest import bearer
from tests.helpers_orders import buy, choose, counts, order_row, out_trade_no

# pay_world's fixtures: a test that takes `bundle` starts from the stocked world
app, bundle, stocked_world = pw.app, pw.bundle, pw.stocked_world


@pytest.fixture(scope="session")
def merchant_key():
    return pw.shared_key("merchant")


@pytest.fixture
def wechat(app, merchant_key):
    server = pw.WeChatPay(merchant_key)
    app.config.update(server.settings(merchant_key))
    yield server
    server.close()


def notify(client, headers, body):
    return client.post("/api/v1/payments/wechat/notify", data=body, headers=headers)


def test_native_order_qr_then_notification_retires_once(app, client, db, wechat, bundle):
    public_id = buy(client, bundle)
    chose = choose(client, public_id, "wechat_native")
    assert chose.status_code == 303
    (created,) = [r for r in wechat.requests if r["path"] == "/v3/pay/transactions/native"]
    sent = json.loads(created["body"])
    number = out_trade_no(db, public_id)
    assert sent["out_trade_no"] == number and sent["amount"] == {"total": 10000, "currency": "CNY"}
    assert sent["notify_url"].endswith("/api/v1/payments/wechat/notify")
    assert sent["time_expire"].endswith("+08:00")
    page = client.get(f"/orders/{public_id}").get_data(as_text=True)
    assert "微信扫码支付" in page and f"/orders/{public_id}/wechat-qr.png" in page
    qr = client.get(f"/orders/{public_id}/wechat-qr.png")
    (code,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.data)))
    assert code.text.startswith("weixin://wxpay/bizpayurl?pr=")

    transaction_id = wechat.pay(number)
    headers, body = wechat.notification(number)
    answer = notify(client, headers, body)
    assert answer.status_code == 204 and answer.data == b""
    order = order_row(db, public_id)
    assert (order["status"], order["payment_method"], order["payment_reference"]) == (
        "retired",
        "wechat",
        transaction_id,
    )
    before = counts(db)
    assert before[0] == 1 and before[2] == 0
    again = notify(client, headers, body)  # WeChat retries the same notification
    assert again.status_code == 204
    assert counts(db) == before
    events = db.execute("SELECT outcome FROM payment_events WHERE provider = 'wechat'").fetchall()
    assert events == [("paid",)]
    actions = [r[0] for r in db.execute("SELECT action FROM audit_log ORDER BY seq")]
    assert "payment.opened" in actions and "payment.notified" in actions


@pytest.mark.parametrize("forgery", ["tampered", "wrong_key", "wrong_apiv3_key", "stale"])
def test_forged_notifications_are_refused_and_change_nothing(
    app, client, db, wechat, bundle, forgery
):
    public_id = buy(client, bundle)
    choose(client, public_id, "wechat_native")
    number = out_trade_no(db, public_id)
    wechat.pay(number)
    if forgery == "wrong_key":
        headers, body = wechat.notification(number, key=pw.rsa_key())
    elif forgery == "wrong_apiv3_key":
        headers, body = wechat.notification(number, apiv3_key="f" * 32)
    elif forgery == "stale":
        headers, body = wechat.notification(number, stamp=int(time.time()) - 3600)
    else:
        headers, body = wechat.notification(number)
        body = body.replace(b'"summary": "', b'"summary": "x')
    answer = notify(client, headers, body)
    assert answer.status_code == 401
    assert answer.json == {"code": "FAIL", "message": "验签失败"}
    assert order_row(db, public_id)["status"] == "reserved"
    assert db.execute("SELECT count(*) FROM payment_events").fetchone()[0] == 0
    refused = db.execute("SELECT count(*) FROM audit_log WHERE action = 'payment.refused'")
    assert refused.fetchone()[0] == 1


def test_wrong_amount_is_refunded_and_the_order_stays_unpaid(app, client, db, wechat, bundle):
    public_id = buy(client, bundle)
    choose(client, public_id, "wechat_native")
    number = out_trade_no(db, public_id)
    transaction_id = wechat.pay(number, paid_fen=1)
    assert notify(client, *wechat.notification(number)).status_code == 204
    assert order_row(db, public_id)["status"] == "reserved"
    (refund,) = wechat.refunds
    assert refund["transaction_id"] == transaction_id
    assert refund["amount"] == {"refund": 1, "total": 1, "currency": "CNY"}
    row = db.execute("SELECT reason, status, amount_fen FROM refunds").fetchone()
    assert row == ("amount_mismatch", "succeeded", 1)


def test_unknown_order_is_recorded_for_finance_who_refunds_it(app, client, db, wechat, world):
    wechat.trades["SPNOTOURS0000000001"] = {
        "request": {"amount": {"total": 500}},
        "state": "NOTPAY",
    }
    wechat.pay("SPNOTOURS0000000001")
    assert notify(client, *wechat.notification("SPNOTOURS0000000001")).status_code == 204
    (event,) = db.execute("SELECT outcome, transaction_id FROM payment_events").fetchall()
    assert event[0] == "unknown_order" and wechat.refunds == []
    finance = bearer(world.tokens["finance"])
    page = client.get("/finance/refunds", headers=finance).get_data(as_text=True)
    assert event[1] in page
    event_id = db.execute("SELECT event_id FROM payment_events").fetchone()[0]
    done = client.post(
        "/finance/refunds/unknown",
        headers=finance,
        data={"provider": "wechat", "event_id": event_id},
    )
    assert done.status_code == 303
    assert [r["amount"]["refund"] for r in wechat.refunds] == [500]


def test_a_payment_after_the_reservation_expired_is_refunded(app, client, db, wechat, bundle):
    public_id = buy(client, bundle)
    choose(client, public_id, "wechat_native")
    number = out_trade_no(db, public_id)
    db.execute("UPDATE orders SET expires_at = '2000-01-01T00:00:00.000Z'")
    db.conn.commit()
    wechat.pay(number)
    assert notify(client, *wechat.notification(number)).status_code == 204
    order = order_row(db, public_id)
    assert order["status"] == "expired" and order["paid_at"] is None
    assert [r["reason"] for r in db.query("SELECT reason FROM refunds")] == ["reservation_expired"]
    assert len(wechat.refunds) == 1
    available = db.execute("SELECT count(*) FROM tonnes WHERE status = 'reserved'").fetchone()[0]
    assert available == 0


def test_expired_reservations_close_their_open_trades(app, client, db, wechat, bundle):
    public_id = buy(client, bundle)
    choose(client, public_id, "wechat_native")
    number = out_trade_no(db, public_id)
    db.execute("UPDATE orders SET expires_at = '2000-01-01T00:00:00.000Z'")
    db.conn.commit()
    buy(client, bundle)  # the next order notices the expiry
    assert wechat.closed == [number]
    status = db.execute("SELECT status FROM payment_attempts WHERE out_trade_no = ?", [number])
    assert status.fetchone()[0] == "closed"


def test_buyer_back_before_the_notification_gets_the_certificate_by_query(
    app, client, db, wechat, bundle
):
    public_id = buy(client, bundle)
    choose(client, public_id, "wechat_native")
    number = out_trade_no(db, public_id)
    assert client.get(f"/api/v1/orders/{public_id}/status").json["order"]["status"] == "reserved"
    wechat.pay(number)
    db.execute("UPDATE payment_attempts SET queried_at = NULL")
    db.conn.commit()
    polled = client.get(f"/api/v1/orders/{public_id}/status").json["order"]
    assert polled["status"] == "retired" and len(polled["certificates"]) == 1
    before = counts(db)
    assert notify(client, *wechat.notification(number)).status_code == 204  # arrives late
    assert counts(db) == before
    outcomes = [r[0] for r in db.execute("SELECT outcome FROM payment_events ORDER BY rowid")]
    assert outcomes == ["paid", "duplicate"]


def test_paying_twice_refunds_the_second_payment(app, client, db, wechat, bundle):
    public_id = buy(client, bundle)
    choose(client, public_id, "wechat_native")
    first_trade = out_trade_no(db, public_id)
    choose(client, public_id, "wechat_h5")
    second_trade = out_trade_no(db, public_id)
    assert first_trade != second_trade
    wechat.pay(first_trade)
    notify(client, *wechat.notification(first_trade))
    second = wechat.pay(second_trade)
    notify(client, *wechat.notification(second_trade))
    assert db.execute("SELECT count(*) FROM certificates").fetchone()[0] == 1
    assert [r["transaction_id"] for r in wechat.refunds] == [second]


def test_h5_sends_the_phone_to_wechat_and_back_to_the_order(app, client, db, wechat, bundle):
    public_id = buy(client, bundle)
    went = choose(client, public_id, "wechat_h5")
    assert went.status_code == 303
    assert went.headers["Location"].startswith(f"{wechat.url}/pay/h5?prepay_id=")
    assert (
        f"redirect_url=http%3A%2F%2F127.0.0.1%3A5000%2Forders%2F{public_id}"
        in went.headers["Location"]
    )
    (created,) = [r for r in wechat.requests if r["path"] == "/v3/pay/transactions/h5"]
    assert json.loads(created["body"])["scene_info"]["h5_info"] == {"type": "Wap"}


def test_jsapi_parameters_are_signed_with_the_merchant_key(app, db, wechat, bundle, merchant_key):
    from server.registry import payments
    from server.registry.providers import wechat as provider

    with app.test_request_context():
        order = orders.get_order(db, pw_order(db, bundle))
        attempt = payments.open_attempt(db, order, "wechat", "jsapi", openid="oUpF8uMuAJO_M2")
        params = provider.jsapi_params(attempt["prepay_id"])
    message = f"{pw.APPID}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
    assert pw.rsa_sha256_ok(merchant_key.public_key(), message, params["paySign"])
    assert params["package"] == f"prepay_id={attempt['prepay_id']}"


def pw_order(db, bundle) -> str:
    made, _ = orders.reserve(
        db, {"request_id": uuid.uuid4().hex, "bundle_id": bundle["id"], "tonnes": 1}, None
    )
    return made["public_id"]


def test_platform_certificate_mode(app, client, db, bundle, merchant_key, instance):
    server = pw.WeChatPay(merchant_key, certificate=True)
    try:
        folder = instance / "wechatpay" / "platform"
        folder.mkdir(parents=True)
        (folder / f"{server.serial}.pem").write_text(server.platform_certificate())
        app.config.update(server.settings(merchant_key))
        public_id = buy(client, bundle)
        choose(client, public_id, "wechat_native")
        number = out_trade_no(db, public_id)
        server.pay(number)
        assert notify(client, *server.notification(number)).status_code == 204
        assert order_row(db, public_id)["status"] == "retired"
    finally:
        server.close()


def test_daily_trade_bill_reconciles_with_nothing_unmatched(app, client, db, wechat, bundle, world):
    public_id = buy(client, bundle)
    choose(client, public_id, "wechat_native")
    number = out_trade_no(db, public_id)
    transaction_id = wechat.pay(number)
    notify(client, *wechat.notification(number))
    late = buy(client, bundle)
    choose(client, late, "wechat_native")
    late_number = out_trade_no(db, late)
    db.execute(
        "UPDATE orders SET expires_at = '2000-01-01T00:00:00.000Z' WHERE public_id = ?", [late]
    )
    db.conn.commit()
    late_transaction = wechat.pay(late_number)
    notify(client, *wechat.notification(late_number))
    out_refund_no = db.execute("SELECT out_refund_no FROM refunds").fetchone()[0]
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    header = (
        "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
        "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
        "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
    )

    def row(trade, number_, state, amount, refund_no="0", refund="0.00"):
        values = [
            f"{day} 10:00:00",
            pw.APPID,
            pw.MCHID,
            "0",
            "",
            trade,
            number_,
            "oUpF8u",
            "NATIVE",
            state,
            "OTHERS",
            "CNY",
            amount,
            "0.00",
            "0" if refund_no == "0" else "50300" + refund_no[-6:],
            refund_no,
            refund,
            "0.00",
            "ORIGINAL" if refund_no != "0" else "",
            "SUCCESS" if refund_no != "0" else "",
            "四旁树碳汇 1 吨",
            "",
            "0.60000",
            "0.60%",
            "100.00",
            "0.00",
            "",
        ]
        return ",".join("`" + v for v in values)

    lines = [
        header,
        row(transaction_id, number, "SUCCESS", "100.00"),
        row(late_transaction, late_number, "SUCCESS", "100.00"),
        row(late_transaction, late_number, "REFUND", "0.00", out_refund_no, "100.00"),
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额",
        "`3,`200.00,`100.00,`0.00,`1.20000,`200.00,`100.00",
    ]
    wechat.bill = ("\n".join(lines) + "\n").encode()
    from server.registry import statements
    from server.registry.providers import wechat as provider

    with app.app_context():
        raw = provider.fetch_statement(day)
        statement_id = statements.import_statement(db, "wechat", f"{day}.csv", raw, "user:3")
    page = client.get(
        f"/finance/statements/{statement_id}", headers=bearer(world.tokens["finance"])
    ).get_data(as_text=True)
    assert 'data-unmatched="0"' in page
    outcomes = [r[0] for r in db.execute("SELECT outcome FROM statement_lines ORDER BY line_no")]
    assert outcomes == ["matched", "refunded", "refund_matched"]
    wechat.bill += b"\n"  # a statement missing the paid order shows it
    lines.pop(1)
    wechat.bill = ("\n".join(lines) + "\n").encode()
    with app.app_context():
        raw = provider.fetch_statement(day)
        statement_id = statements.import_statement(db, "wechat", "again.csv", raw, "user:3")
        found = statements.summary(db, statement_id)
    assert found["unmatched_count"] == 1 and found["missing"][0]["public_id"] == public_id
