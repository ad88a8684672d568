"""Certificates: the PNG's QR leads to a verify page that says valid; any altered stored
field shows a mismatch; the PDF carries the Chinese text and the same QR; webhooks."""

import io
import json
import time
import uuid
from urllib.parse import urlsplit

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image

from server.db import get_db
from server.registry import orders, payments
from tests import registry_world as rw
from tests.conftest import bearer


def retire_one_tonne(app) -> dict:
    """One retired tonne with its certificate id."""
    db = get_db()
    bundle, _, _ = rw.stocked_bundle(db, app.world.user_ids["verifier"])
    order = rw.order(db, bundle["id"], 1, beneficiary="王小红", reason="抵消一次航班")
    orders.confirm_payment(db, order, "bank", "ICBC-CERT-1", "user:3")
    return {"certificate": db.execute("SELECT id FROM certificates").fetchone()[0]}


@pytest.fixture(scope="session")
def retired(snapshots, seeded):
    return snapshots.extend("registry_certificates.retired", retire_one_tonne, on=seeded)


@pytest.fixture
def app(request, instance, seeded, retired):
    """Tests that take `certificate` start from the world with it retired."""
    start = retired if "certificate" in request.fixturenames else seeded
    return start.app(instance)


@pytest.fixture
def certificate(world) -> str:
    return world.built["certificate"]


def verify_result(client, path: str) -> str:
    page = client.get(path)
    marker = 'data-result="'
    text = page.get_data(as_text=True)
    return text[text.index(marker) + len(marker) :].split('"', 1)[0]


def test_png_qr_leads_to_a_verify_page_that_says_valid(client, db, certificate):
    png = client.get(f"/api/v1/certificates/{certificate}/image.png")
    assert png.status_code == 200 and png.mimetype == "image/png"
    image = Image.open(io.BytesIO(png.data))
    assert image.size == (1600, 1130)
    (barcode,) = zxingcpp.read_barcodes(image)
    assert barcode.format == zxingcpp.BarcodeFormat.QRCode
    path = urlsplit(barcode.text).path
    assert path == f"/verify/{certificate}"
    assert verify_result(client, path) == "valid"
    page = client.get(path).get_data(as_text=True)
    assert 'data-ledger="pending"' in page  # until the worker confirms
    assert "王小红" not in page and "受益人未公开" in page  # the buyer did not opt in
    order = db.execute("SELECT public_id FROM orders").fetchone()[0]
    assert "王小红" in client.get(f"{path}?order={order}").get_data(as_text=True)


FIELDS = {
    "beneficiary": "'张三'",
    "reason": "'别的用途'",
    "tonnes": "tonnes + 1",
    "serials": "'[\"SP-360423-0001-2026-000002\"]'",
    "vintages": "'[2025]'",
    "villages": "'[]'",
    "retired_on": "'2020-01-01'",
    "price_fen": "1",
    "amount_fen": "amount_fen + 100",
    "farmers_fen": "farmers_fen + 1",
    "sha256": "'" + "0" * 64 + "'",
    "document": "replace(document, '王小红', '张三')",
    "bundle_id": "bundle_id",  # unchanged: must stay valid
}


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_tampering_any_stored_field_shows_a_mismatch(client, db, certificate, field):
    db.execute(f"UPDATE certificates SET {field} = {FIELDS[field]}")  # noqa: S608 - test data
    db.conn.commit()
    expected = "valid" if field == "bundle_id" else "mismatch"
    assert verify_result(client, f"/verify/{certificate}") == expected
    api = client.get(f"/api/v1/certificates/{certificate}").json
    assert api["check"]["valid"] is (expected == "valid")


def test_tampering_the_bundle_or_a_retirement_shows_a_mismatch(client, db, certificate):
    db.execute("DROP TRIGGER bundles_rules_fixed")  # as someone editing the file would
    db.execute("UPDATE bundles SET name = '别的碳汇包'")
    db.conn.commit()
    assert verify_result(client, f"/verify/{certificate}") == "mismatch"


def test_pdf_has_the_chinese_text_and_the_qr(client, db, certificate):
    public = client.get(f"/api/v1/certificates/{certificate}/document.pdf").data
    public_text = pdfium.PdfDocument(public)[0].get_textpage().get_text_range()
    assert "王小红" not in public_text and "受益人未公开" in public_text
    order = db.execute("SELECT public_id FROM orders").fetchone()[0]
    pdf = client.get(f"/api/v1/certificates/{certificate}/document.pdf?order={order}")
    assert pdf.data.startswith(b"%PDF")
    document = pdfium.PdfDocument(pdf.data)
    page = document[0]
    text = page.get_textpage().get_text_range()
    assert "碳抵消证书" in text and "王小红" in text and certificate in text
    image = page.render(scale=300 / 72).to_pil()
    texts = [b.text for b in zxingcpp.read_barcodes(image)]
    assert any(t.endswith(f"/verify/{certificate}") for t in texts)


def test_buyer_pages_buy_pay_and_show_the_certificate(client, db, world, app):
    with app.app_context():
        bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
    listing = client.get("/bundles").get_data(as_text=True)
    assert bundle["name"] in listing
    page = client.get(f"/bundles/{bundle['id']}").get_data(as_text=True)
    assert "预订并去付款" in page and "农户每吨所得" in page
    csrf = client.get("/api/v1/auth/csrf").json["csrf_token"]
    form = {
        "csrf_token": csrf,
        "request_id": uuid.uuid4().hex,
        "tonnes": "1",
        "beneficiary": "小明 & 小红",
        "reason": "",
    }
    bought = client.post(f"/bundles/{bundle['id']}/buy", data=form)
    assert bought.status_code == 303
    order_path = bought.headers["Location"]
    app.config.update(BANK_PAYEE_NAME="武宁县碳汇中心", BANK_PAYEE_ACCOUNT="6222020200112233")
    chose = client.post(f"{order_path}/pay", data={"csrf_token": csrf, "method": "bank"})
    assert chose.status_code == 303
    assert "附言填写订单号" in client.get(order_path).get_data(as_text=True)
    again = client.post(f"/bundles/{bundle['id']}/buy", data=form)  # double submit
    assert again.headers["Location"] == order_path
    public_id = order_path.rsplit("/", 1)[1]
    client.post(
        f"/api/v1/orders/{public_id}/payment",
        headers=bearer(world.tokens["finance"]),
        json={"method": "bank", "reference": "PAGE-0001"},
    )
    done = client.get(order_path).get_data(as_text=True)
    assert "/verify/SPC-" in done and "小明 &amp; 小红" not in done  # shown on the cert only
    bad = client.post(
        f"/bundles/{bundle['id']}/buy",
        data=form | {"request_id": uuid.uuid4().hex, "beneficiary": "<b>x</b>"},
    )
    assert bad.status_code == 422 and "<b>x</b>" not in bad.get_data(as_text=True)


def _webhook(client, app, event: dict, *, secret: bytes = b"webhook-test-secret", at=None):
    raw = json.dumps(event).encode()
    signature = payments.sign(secret, raw, int(time.time()) if at is None else at)
    return client.post(
        "/api/v1/payments/webhooks/testpay",
        data=raw,
        content_type="application/json",
        headers={payments.SIGNATURE_HEADER: signature},
    )


@pytest.fixture
def reserved(app, db, world):
    app.config.update(TESTPAY_ENABLED=True, TESTPAY_SECRET="webhook-test-secret")
    with app.app_context():
        bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
        return rw.order(db, bundle["id"], 2)


def _event(order, **changes):
    return {
        "event_id": "evt_" + uuid.uuid4().hex,
        "type": "payment.succeeded",
        "order_id": order["public_id"],
        "amount_fen": order["amount_fen"],
        "reference": "TP-" + uuid.uuid4().hex[:10],
    } | changes


def test_signed_webhook_pays_once_and_a_replay_changes_nothing(client, app, db, reserved):
    event = _event(reserved)
    response = _webhook(client, app, event)
    assert response.json == {"event_id": event["event_id"], "outcome": "paid"}
    assert db.execute("SELECT count(*) FROM certificates").fetchone()[0] == 1
    replay = _webhook(client, app, event)
    assert (replay.status_code, replay.json["error"]["code"]) == (409, "replayed")
    assert db.execute("SELECT count(*) FROM certificates").fetchone()[0] == 1


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"secret": b"wrong secret"}, "bad_signature"),
        ({"at": 1_000_000_000}, "stale_timestamp"),
    ],
)
def test_webhook_with_bad_signature_or_old_timestamp_is_refused(
    client, app, db, reserved, kwargs, code
):
    response = _webhook(client, app, _event(reserved), **kwargs)
    assert (response.status_code, response.json["error"]["code"]) == (401, code)
    assert db.execute("SELECT count(*) FROM payment_events").fetchone()[0] == 0
    assert db.execute("SELECT status FROM orders").fetchone()[0] == "reserved"


def test_webhook_without_signature_or_for_a_wrong_amount(client, app, db, reserved):
    raw = json.dumps(_event(reserved)).encode()
    response = client.post(
        "/api/v1/payments/webhooks/testpay", data=raw, content_type="application/json"
    )
    assert response.status_code == 401
    wrong = _webhook(client, app, _event(reserved, amount_fen=1))
    assert wrong.json["outcome"] == "amount_mismatch"
    assert db.execute("SELECT status FROM orders").fetchone()[0] == "reserved"
    off = client.post("/api/v1/payments/webhooks/nopay", data=raw, content_type="application/json")
    assert off.status_code == 404


def test_garbage_in_a_stored_field_is_a_mismatch_not_an_error(client, db, certificate):
    db.execute("UPDATE certificates SET serials = 'not json', villages = '{'")
    db.conn.commit()
    assert verify_result(client, f"/verify/{certificate}") == "mismatch"
    assert client.get(f"/api/v1/certificates/{certificate}").json["check"]["valid"] is False


def test_bundle_page_shows_tree_photos_without_their_metadata(client, db, world, app):
    with app.app_context():
        bundle, _, grown = rw.stocked_bundle(db, world.user_ids["verifier"])
        photo = rw.tree_photo(grown["village"]["code"])
    page = client.get(f"/bundles/{bundle['id']}").get_data(as_text=True)
    url = f"/bundles/{bundle['id']}/photos/{photo}.jpg"
    assert url in page
    response = client.get(url)
    assert response.status_code == 200 and response.mimetype == "image/jpeg"
    image = Image.open(io.BytesIO(response.data))
    assert image.size == (320, 240)
    assert dict(image.getexif()) == {}
    assert client.get(f"/bundles/{bundle['id']}/photos/{'ab' * 32}.jpg").status_code == 404


def test_webhook_for_an_unknown_order_is_recorded_not_applied(client, app, db, reserved):
    event = _event(reserved, order_id="x" * 24)
    response = _webhook(client, app, event)
    assert response.json["outcome"] == "unknown_order"
    row = db.execute("SELECT outcome FROM payment_events").fetchone()
    assert row[0] == "unknown_order"
    assert db.execute("SELECT count(*) FROM certificates").fetchone()[0] == 0


def test_enterprise_account_page_lists_its_certificates(client, db, world, app):
    with app.app_context():
        bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
        enterprise = db["users"].get(world.user_ids["enterprise"])
        order = rw.order(db, bundle["id"], 2, user=enterprise)
        orders.confirm_payment(db, order, "bank", "ACCOUNT-1", "user:3")
        cert, _ = orders.retire_held(
            db,
            order,
            {"request_id": "acct-retire-1", "tonnes": 1, "beneficiary": "某公司", "reason": "赔偿"},
        )
    page = client.get("/account/certificates", headers=bearer(world.tokens["enterprise"]))
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert cert["id"] in text and "持有待注销 1 吨" in text
    other = client.get("/account/certificates", headers=bearer(world.tokens["finance"]))
    assert other.status_code == 403


def test_one_payment_reference_cannot_pay_two_orders(client, db, world, app):
    with app.app_context():
        bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
        first, second = rw.order(db, bundle["id"]), rw.order(db, bundle["id"])
    finance = bearer(world.tokens["finance"])
    body = {"method": "bank", "reference": "SAME-REF-1"}
    assert (
        client.post(
            f"/api/v1/orders/{first['public_id']}/payment", headers=finance, json=body
        ).status_code
        == 200
    )
    again = client.post(f"/api/v1/orders/{second['public_id']}/payment", headers=finance, json=body)
    assert (again.status_code, again.json["error"]["code"]) == (409, "reference_used")
    assert db.execute("SELECT count(*) FROM certificates").fetchone()[0] == 1


def test_a_courts_case_number_is_its_own_line_on_every_form_of_the_certificate(
    client, db, world, app
):
    case = "（2026）赣0423刑初12号"
    with app.app_context():
        bundle, _, _ = rw.stocked_bundle(db, world.user_ids["verifier"])
        enterprise = db["users"].get(world.user_ids["enterprise"])
        held = orders.confirm_payment(
            db, rw.order(db, bundle["id"], 1, enterprise), "bank", "ICBC-CASE-1", "user:3"
        )
        cert, _ = orders.retire_held(
            db,
            held,
            {
                "request_id": "retire-case-line-1",
                "beneficiary": "某化工有限公司",
                "reason": "司法生态赔偿",
                "case_number": case,
            },
        )
    assert json.loads(cert["document"])["case_number"] == case
    api = client.get(f"/api/v1/certificates/{cert['id']}").json
    assert api["check"]["valid"] is True
    assert api["certificate"]["document"]["case_number"] == case
    pdf = client.get(f"/api/v1/certificates/{cert['id']}/document.pdf").data
    text = pdfium.PdfDocument(pdf)[0].get_textpage().get_text_range()
    assert "案号" in text and case in text
    assert "案号" not in text.split(case)[0].split("用途")[0]  # under the reason, not in it
    png = Image.open(io.BytesIO(client.get(f"/api/v1/certificates/{cert['id']}/image.png").data))
    (barcode,) = zxingcpp.read_barcodes(png)
    assert urlsplit(barcode.text).path == f"/verify/{cert['id']}"
    db.execute("UPDATE certificates SET case_number = '（2026）赣0423刑初13号'")
    db.conn.commit()
    assert verify_result(client, f"/verify/{cert['id']}") == "mismatch"
