"""The buyer's side: 我的证书 by phone number and a one-time SMS code (console sender), the
portrait share card, and beneficiaries kept off public views unless the buyer opts in."""

import io
from urllib.parse import urlsplit

import pytest
import zxingcpp
from PIL import Image

from server import sms
from tests import pay_world as pw
from tests.helpers_auth import csrf_token
from tests.helpers_orders import buy, choose, order_row

# pay_world's fixtures: a test that takes `bundle` starts from the stocked world
app, bundle, stocked_world = pw.app, pw.bundle, pw.stocked_world

PHONE = "13812345678"


@pytest.fixture
def paid(app, client, db, bundle):
    """An order bought with a phone number and paid through the local test provider (taking
    `bundle`, every test here starts from the world with the stocked bundle)."""
    app.config.update(TESTPAY_ENABLED=True)
    public_id = buy(client, bundle, phone=PHONE, beneficiary="王小红")
    went = choose(client, public_id, "testpay")
    assert went.status_code == 303 and went.headers["Location"].startswith("/pay/testpay/")
    cashier = client.get(went.headers["Location"]).get_data(as_text=True)
    assert "确认付款" in cashier and "¥100.00" in cashier
    back = client.post(went.headers["Location"], data={"csrf_token": csrf_token(client)})
    assert back.headers["Location"] == f"/orders/{public_id}"
    assert order_row(db, public_id)["status"] == "retired"
    return {"order": public_id, "bundle": bundle}


def sent_code(app) -> str:
    with app.app_context():
        return sms.sender(app).last(PHONE, "buyer_code")["params"]["code"]


def test_phone_is_stored_encrypted_and_indexed(db, paid):
    row = order_row(db, paid["order"])
    assert row["buyer_phone"].startswith("v1:") and PHONE not in row["buyer_phone"]
    assert len(row["buyer_phone_index"]) == 64


def test_my_certificates_by_phone_and_one_time_code(app, db, paid):
    browser = app.test_client()
    assert "获取验证码" in browser.get("/my/certificates").get_data(as_text=True)
    asked = browser.post(
        "/my/certificates/code", data={"csrf_token": csrf_token(browser), "phone": "138-1234-5678"}
    )
    assert asked.status_code == 200 and "138****5678" in asked.get_data(as_text=True)
    code = sent_code(app)
    (stored,) = db.execute("SELECT code_hash FROM buyer_codes").fetchall()
    assert code not in stored[0]
    wrong = browser.post(
        "/my/certificates/verify",
        data={
            "csrf_token": csrf_token(browser),
            "phone": PHONE,
            "code": f"{(int(code) + 1) % 10**6:06d}",
        },
    )
    assert wrong.status_code == 422
    assert "王小红" not in browser.get("/my/certificates").get_data(as_text=True)
    right = browser.post(
        "/my/certificates/verify",
        data={"csrf_token": csrf_token(browser), "phone": PHONE, "code": code},
    )
    assert right.status_code == 303
    listing = browser.get("/my/certificates").get_data(as_text=True)
    cert_id = db.execute("SELECT id FROM certificates").fetchone()[0]
    assert cert_id in listing and f"/orders/{paid['order']}" in listing
    again = browser.post(
        "/my/certificates/verify",
        data={"csrf_token": csrf_token(browser), "phone": PHONE, "code": code},
    )
    assert again.status_code == 422  # a code works once


def test_five_wrong_codes_void_it_and_sending_is_rate_limited(app, db, paid):
    app.config.update(BUYER_CODE_RATE_LIMIT="2 per hour")
    browser = app.test_client()
    token = csrf_token(browser)
    browser.post("/my/certificates/code", data={"csrf_token": token, "phone": PHONE})
    code = sent_code(app)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        browser.post(
            "/my/certificates/verify", data={"csrf_token": token, "phone": PHONE, "code": wrong}
        )
    late = browser.post(
        "/my/certificates/verify", data={"csrf_token": token, "phone": PHONE, "code": code}
    )
    assert late.status_code == 422
    other = app.test_client()  # another address cannot get round the number's allowance
    other.environ_base["REMOTE_ADDR"] = "10.1.2.3"
    second = other.post(
        "/my/certificates/code", data={"csrf_token": csrf_token(other), "phone": PHONE}
    )
    assert second.status_code == 200
    third = other.post(
        "/my/certificates/code", data={"csrf_token": csrf_token(other), "phone": PHONE}
    )
    assert third.status_code == 429
    assert db.execute("SELECT count(*) FROM buyer_codes").fetchone()[0] == 2


def test_a_number_without_orders_gets_the_same_answer_and_no_text(app, paid):
    browser = app.test_client()
    asked = browser.post(
        "/my/certificates/code", data={"csrf_token": csrf_token(browser), "phone": "13900000000"}
    )
    assert asked.status_code == 200 and "如果这个号码买过碳汇" in asked.get_data(as_text=True)
    with app.app_context():
        assert sms.sender(app).last("13900000000") is None


def test_share_card_is_portrait_with_the_verify_qr(client, db, paid):
    cert_id = db.execute("SELECT id FROM certificates").fetchone()[0]
    card = client.get(f"/api/v1/certificates/{cert_id}/card.png")
    assert card.status_code == 200 and card.mimetype == "image/png"
    image = Image.open(io.BytesIO(card.data))
    assert image.size == (1080, 1440)
    (code,) = zxingcpp.read_barcodes(image)
    assert urlsplit(code.text).path == f"/verify/{cert_id}"
    page = client.get(f"/orders/{paid['order']}").get_data(as_text=True)
    assert f"/api/v1/certificates/{cert_id}/card.png?order={paid['order']}" in page
    assert "长按图片保存" in page


def test_beneficiary_stays_off_public_views_unless_opted_in(app, client, db, paid):
    cert_id = db.execute("SELECT id FROM certificates").fetchone()[0]
    stranger = app.test_client()
    assert "王小红" not in stranger.get(f"/verify/{cert_id}").get_data(as_text=True)
    shown = stranger.get(f"/api/v1/certificates/{cert_id}").json
    assert shown["certificate"]["document"]["beneficiary"] == "（未公开）"
    assert shown["check"]["valid"] is True
    key = f"?order={paid['order']}"
    assert "王小红" in stranger.get(f"/verify/{cert_id}{key}").get_data(as_text=True)
    opted = buy(client, paid["bundle"], beneficiary="李小明", show_beneficiary="1")
    choose(client, opted, "testpay")
    number = db.execute(
        "SELECT out_trade_no FROM payment_attempts ORDER BY id DESC LIMIT 1"
    ).fetchone()[0]
    client.post(f"/pay/testpay/{number}", data={"csrf_token": csrf_token(client)})
    second = db.execute("SELECT id FROM certificates ORDER BY id DESC").fetchone()[0]
    assert "李小明" in stranger.get(f"/verify/{second}").get_data(as_text=True)
