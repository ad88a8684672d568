"""Alipay end to end against a local gateway speaking its protocol: the SDK signs the page
and wap pay URLs and the queries with the app's key, the test signs notifications and
return URLs with Alipay's key (RSA2) as Alipay does; forgeries are refused, the return URL
is believed only after a trade query, replays change nothing."""

import io
import time
import zipfile
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests import pay_world as pw
from tests.conftest import bearer
from tests.helpers_orders import buy, choose, counts, order_row, out_trade_no

# pay_world's fixtures: a test that takes `bundle` starts from the stocked world
app, bundle, stocked_world = pw.app, pw.bundle, pw.stocked_world


@pytest.fixture(scope="session")
def app_key():
    return pw.shared_key("app")


@pytest.fixture
def alipay(app, app_key):
    server = pw.Alipay(app_key)
    app.config.update(server.settings(app_key))
    yield server
    server.close()


def open_cashier(alipay, location: str) -> dict[str, str]:
    """The browser follows the signed URL to Alipay's cashier; returns what the SDK sent."""
    import urllib.request

    assert location.startswith(alipay.gateway + "?")
    with urllib.request.urlopen(location) as page:  # noqa: S310 - the local gateway
        assert "支付宝收银台" in page.read().decode()
    return dict(parse_qsl(urlsplit(location).query))


def notify(client, form: dict[str, str]):
    return client.post("/api/v1/payments/alipay/notify", data=form)


def test_page_pay_then_notification_retires_once(app, client, db, alipay, bundle):
    public_id = buy(client, bundle)
    went = choose(client, public_id, "alipay_page")
    assert went.status_code == 303
    sent = open_cashier(alipay, went.headers["Location"])
    assert sent["method"] == "alipay.trade.page.pay" and sent["sign_type"] == "RSA2"
    assert sent["notify_url"].endswith("/api/v1/payments/alipay/notify")
    assert sent["return_url"].endswith("/pay/alipay/return")
    number = out_trade_no(db, public_id)
    trade_no = alipay.pay(number)
    form = alipay.notification(number)
    answer = notify(client, form)
    assert (answer.status_code, answer.data) == (200, b"success")
    order = order_row(db, public_id)
    assert (order["status"], order["payment_method"], order["payment_reference"]) == (
        "retired",
        "alipay",
        trade_no,
    )
    before = counts(db)
    assert notify(client, form).data == b"success"  # Alipay sends it again
    assert counts(db) == before
    finished = alipay.notification(number, trade_status="TRADE_FINISHED")  # a later notice
    assert notify(client, finished).data == b"success"
    assert counts(db) == before and before[0] == 1


def test_wap_pay_for_phones(app, client, db, alipay, bundle):
    public_id = buy(client, bundle)
    sent = open_cashier(alipay, choose(client, public_id, "alipay_wap").headers["Location"])
    assert sent["method"] == "alipay.trade.wap.pay"
    assert '"product_code":"QUICK_WAP_PAY"' in sent["biz_content"]


@pytest.mark.parametrize("forgery", ["tampered", "wrong_key", "other_app", "no_sign"])
def test_forged_notifications_are_refused(app, client, db, alipay, bundle, forgery):
    public_id = buy(client, bundle)
    open_cashier(alipay, choose(client, public_id, "alipay_page").headers["Location"])
    number = out_trade_no(db, public_id)
    alipay.pay(number)
    if forgery == "wrong_key":
        form = alipay.notification(number, key=pw.rsa_key())
    elif forgery == "other_app":
        form = alipay.notification(number, app_id="2021000000009999")
    else:
        form = alipay.notification(number)
        if forgery == "tampered":
            form["total_amount"] = "0.01"
        else:
            del form["sign"]
    answer = notify(client, form)
    assert (answer.status_code, answer.data) == (400, b"fail")
    assert order_row(db, public_id)["status"] == "reserved"
    assert db.execute("SELECT count(*) FROM payment_events").fetchone()[0] == 0


def test_return_url_is_believed_only_after_a_trade_query(app, client, db, alipay, bundle):
    public_id = buy(client, bundle)
    open_cashier(alipay, choose(client, public_id, "alipay_page").headers["Location"])
    number = out_trade_no(db, public_id)
    unpaid = client.get("/pay/alipay/return", query_string=alipay.return_params(number))
    assert unpaid.status_code == 303 and unpaid.headers["Location"] == f"/orders/{public_id}"
    assert order_row(db, public_id)["status"] == "reserved"  # signed, but Alipay says unpaid
    forged = alipay.return_params(number, key=pw.rsa_key())
    assert client.get("/pay/alipay/return", query_string=forged).status_code == 400
    alipay.pay(number)
    back = client.get("/pay/alipay/return", query_string=alipay.return_params(number))
    assert back.status_code == 303
    assert order_row(db, public_id)["status"] == "retired"
    queries = [r for r in alipay.requests if r.get("method") == "alipay.trade.query"]
    assert len(queries) == 2
    before = counts(db)
    notify(client, alipay.notification(number))  # the notification comes after
    assert counts(db) == before


def test_wrong_amount_and_expired_reservation_are_refunded(app, client, db, alipay, bundle):
    public_id = buy(client, bundle)
    open_cashier(alipay, choose(client, public_id, "alipay_page").headers["Location"])
    number = out_trade_no(db, public_id)
    trade_no = alipay.pay(number, paid="0.01")
    assert notify(client, alipay.notification(number)).data == b"success"
    assert order_row(db, public_id)["status"] == "reserved"
    late = buy(client, bundle)
    open_cashier(alipay, choose(client, late, "alipay_wap").headers["Location"])
    late_number = out_trade_no(db, late)
    db.execute(
        "UPDATE orders SET expires_at = '2000-01-01T00:00:00.000Z' WHERE public_id = ?", [late]
    )
    db.conn.commit()
    late_trade = alipay.pay(late_number)
    notify(client, alipay.notification(late_number))
    refunds = [(r["trade_no"], r["refund_amount"]) for r in alipay.refunds]
    assert refunds == [(trade_no, "0.01"), (late_trade, "100.00")]
    reasons = [r[0] for r in db.execute("SELECT reason FROM refunds ORDER BY id")]
    assert reasons == ["amount_mismatch", "reservation_expired"]
    assert db.execute("SELECT count(*) FROM certificates").fetchone()[0] == 0


def test_statement_zip_in_gbk_reconciles(app, client, db, alipay, bundle, world):
    public_id = buy(client, bundle)
    open_cashier(alipay, choose(client, public_id, "alipay_page").headers["Location"])
    number = out_trade_no(db, public_id)
    trade_no = alipay.pay(number)
    notify(client, alipay.notification(number))
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    csv_text = "\n".join(
        [
            "#支付宝业务明细查询",
            "#账号：[20881234567890120156]",
            f"#起始日期：[{day} 00:00:00]   终止日期：[{day} 23:59:59]",
            "#-----------------------------------------业务明细列表----------------------------------------",
            "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,"
            "对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
            "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
            "退款批次号/请求号,服务费（元）,分润（元）,备注",
            f"{trade_no}\t,{number}\t,交易,四旁树碳汇 1 吨,{day} 10:00:00,{day} 10:00:05,,,,,"
            "159****5620,100.00,100.00,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,,-0.60,0.00,",
            "#-----------------------------------------业务明细列表结束------------------------------------",
            "#交易合计：1笔，商家实收共100.00元，商家优惠共0.00元",
        ]
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr(f"2088_{day}_业务明细.csv", csv_text.encode("gb18030"))
        zipped.writestr(f"2088_{day}_业务明细(汇总).csv", "#汇总".encode("gb18030"))
    finance = bearer(world.tokens["finance"])
    done = client.post(
        "/finance/statements",
        headers=finance,
        data={"provider": "alipay", "file": (io.BytesIO(archive.getvalue()), f"{day}.zip")},
    )
    assert done.status_code == 303
    page = client.get(done.headers["Location"], headers=finance).get_data(as_text=True)
    assert 'data-unmatched="0"' in page and 'data-outcome="matched"' in page
    again = client.post(
        "/finance/statements",
        headers=finance,
        data={"provider": "alipay", "file": (io.BytesIO(archive.getvalue()), "again.zip")},
    )
    assert again.status_code == 303 and again.headers["Location"] == "/finance/statements"
    assert db.execute("SELECT count(*) FROM statements").fetchone()[0] == 1
