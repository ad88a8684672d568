"""Enterprise and finance in the workspace: held tonnes retired with a case number (the
certificate says so), an invoice requested and recorded as issued."""

import io
import json

import pytest
from openpyxl import load_workbook

from server.db import first, get_db
from server.registry import orders
from tests import registry_world as rw
from tests.workspace_helpers import post_form, sign_in_form

CASE = "（2026）赣0423刑初12号"


def hold_three_tonnes(app) -> dict:
    """An enterprise order of 3 tonnes, paid by bank transfer and held."""
    db, world = get_db(), app.world
    bundle, _, _ = rw.stocked_bundle(
        db, world.user_ids["verifier"], households_count=3, trees_per_household=12
    )
    enterprise = db["users"].get(world.user_ids["enterprise"])
    made = rw.order(db, bundle["id"], 3, enterprise)
    return {"held": orders.confirm_payment(db, made, "bank", "ICBC-20261207-01", "user:3")}


@pytest.fixture(scope="session")
def holding(snapshots, seeded):
    return snapshots.extend("workspace_buyers.holding", hold_three_tonnes, on=seeded)


@pytest.fixture
def app(instance, holding):
    """Every test here starts from the world with the enterprise's held order."""
    return holding.app(instance)


@pytest.fixture
def held(world) -> dict:
    return world.built["held"]


def test_the_enterprise_home_counts_held_tonnes(client, held):
    sign_in_form(client, "enterprise")
    page = client.get("/enterprise").get_data(as_text=True)
    assert "<strong>3</strong>吨碳汇已持有、待注销" in page


def test_held_tonnes_are_retired_with_a_case_number(client, db, held):
    sign_in_form(client, "enterprise")
    response = post_form(
        client,
        "/enterprise/orders",
        f"/enterprise/orders/{held['public_id']}/retire",
        {
            "request_id": "retire-" + held["public_id"][:20],
            "tonnes": "2",
            "beneficiary": "某化工有限公司",
            "kind": "compensation",
            "case_number": CASE,
            "purpose": "修复受损林地",
        },
        follow=False,
    )

    assert response.status_code == 303
    cert = first(db, "SELECT * FROM certificates WHERE beneficiary = '某化工有限公司'")
    assert response.headers["Location"] == f"/verify/{cert['id']}"
    assert cert["tonnes"] == 2
    assert (cert["reason"], cert["case_number"]) == ("司法生态赔偿；修复受损林地", CASE)
    assert json.loads(cert["document"])["case_number"] == CASE  # under the certificate's hash
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f'<th>案号</th><td data-field="case_number">{CASE}</td>' in page
    assert 'data-result="valid"' in page

    # The export has the case number in its own column and money as numbers that sum.
    book = load_workbook(io.BytesIO(client.get("/enterprise/retirements.xlsx").data))
    sheet = list(book.active.iter_rows(values_only=True))
    header = list(sheet[2])
    assert sheet[0][0] == "enterprise 用户的碳汇注销记录"
    row = dict(zip(header, sheet[3], strict=True))
    assert (row["证书编号"], row["案号"], row["用途"]) == (
        cert["id"],
        CASE,
        "司法生态赔偿；修复受损林地",
    )
    assert row["数量（吨）"] == 2 and row["金额（元）"] == cert["amount_fen"] / 100
    csv_text = client.get("/enterprise/retirements.csv").get_data(as_text=True)
    assert csv_text.lstrip("\ufeff").splitlines()[1].split(",")[5] == CASE
    left = db.execute(
        "SELECT count(*) FROM tonnes WHERE order_id = ? AND status = 'held'", [held["id"]]
    ).fetchone()[0]
    assert left == 1


def test_a_compensation_without_a_case_number_retires_nothing(client, db, held):
    sign_in_form(client, "enterprise")
    page = post_form(
        client,
        "/enterprise/orders",
        f"/enterprise/orders/{held['public_id']}/retire",
        {
            "request_id": "retire-no-case-0001",
            "beneficiary": "某化工有限公司",
            "kind": "compensation",
        },
    ).get_data(as_text=True)
    assert "司法生态赔偿请填写案号。" in page
    assert db.execute("SELECT count(*) FROM certificates").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("(2026)赣0423刑初12号", CASE), (" （2025）最高法民终 3 号", "（2025）最高法民终3号")],
)
def test_a_case_number_is_stored_in_one_form(client, db, held, typed, stored):
    sign_in_form(client, "enterprise")
    post_form(
        client,
        "/enterprise/orders",
        f"/enterprise/orders/{held['public_id']}/retire",
        {
            "request_id": "retire-case-" + stored[1:5] + "-0001",
            "tonnes": "1",
            "beneficiary": "某化工有限公司",
            "kind": "compensation",
            "case_number": typed,
        },
    )
    assert first(db, "SELECT case_number FROM certificates")["case_number"] == stored


@pytest.mark.parametrize(
    "typed", ["12345678", "（2026）赣0423刑初号", "赣0423刑初12号", "（2026）<b>12号"]
)
def test_a_malformed_case_number_retires_nothing(client, db, held, typed):
    sign_in_form(client, "enterprise")
    page = post_form(
        client,
        "/enterprise/orders",
        f"/enterprise/orders/{held['public_id']}/retire",
        {
            "request_id": "retire-bad-case-0001",
            "beneficiary": "某化工有限公司",
            "kind": "compensation",
            "case_number": typed,
        },
    ).get_data(as_text=True)
    assert "案号格式不对，应如（2026）赣0423刑初12号。" in page
    assert db.execute("SELECT count(*) FROM certificates").fetchone()[0] == 0
    assert (
        db.execute(
            "SELECT count(*) FROM tonnes WHERE order_id = ? AND status = 'held'", [held["id"]]
        ).fetchone()[0]
        == 3
    )


def test_another_buyers_order_cannot_be_retired(client, db, held, world):
    db.execute(
        "UPDATE orders SET buyer_user_id = ? WHERE id = ?", [world.user_ids["admin"], held["id"]]
    )
    db.conn.commit()
    sign_in_form(client, "enterprise")
    page = post_form(
        client,
        "/enterprise/orders",
        f"/enterprise/orders/{held['public_id']}/retire",
        {
            "request_id": "retire-other-0001",
            "beneficiary": "某公司",
            "kind": "voluntary",
            "purpose": "抵消",
        },
    ).get_data(as_text=True)
    assert "没有这个订单。" in page
    assert db.execute("SELECT count(*) FROM certificates").fetchone()[0] == 0


def test_an_invoice_is_requested_and_finance_records_it(app, client, db, held):
    sign_in_form(client, "enterprise")
    bad = post_form(
        client,
        "/enterprise/invoices",
        "/enterprise/invoices",
        {"order": held["public_id"], "title": "某化工有限公司", "tax_id": "123"},
    ).get_data(as_text=True)
    assert "请检查：税号" in bad
    page = post_form(
        client,
        "/enterprise/invoices",
        "/enterprise/invoices",
        {"order": held["public_id"], "title": "某化工有限公司", "tax_id": "91360423MA35XXXX0Y"},
    ).get_data(as_text=True)
    assert "已提交发票申请" in page
    row = first(db, "SELECT * FROM invoice_requests")
    assert (row["title"], row["amount_fen"], row["status"]) == (
        "某化工有限公司",
        held["amount_fen"],
        "requested",
    )

    finance = app.test_client()
    sign_in_form(finance, "finance")
    assert "<strong>1</strong>张发票待开具" in finance.get("/finance").get_data(as_text=True)
    page = post_form(
        finance,
        "/finance/invoices",
        f"/finance/invoices/{row['id']}",
        {"invoice_number": "No.00012345"},
    ).get_data(as_text=True)
    assert "已记录开票。" in page
    assert first(db, "SELECT status, invoice_number FROM invoice_requests") == {
        "status": "issued",
        "invoice_number": "No.00012345",
    }
    assert "No.00012345" in client.get("/enterprise/invoices").get_data(as_text=True)


def test_a_bank_return_file_reports_its_problems_in_chinese(app, client, db, held):
    import io

    from server.payouts import settlement
    from tests.language import english_words, readable_text

    with app.app_context():
        batch, _ = settlement.create_batch(db, "2099-01-01", 1, "user:3")
    row = first(db, "SELECT * FROM settlements WHERE batch_id = ?", [batch["id"]])
    sign_in_form(client, "finance")
    returned = (
        "明细编号,amount_fen,状态,流水号\n"
        f"99999,100,成功,BK-1\n{row['id']},{row['amount_fen'] + 1},成功,BK-2\n"
        f"{row['id']},{row['amount_fen']},不知道,BK-3\nabc,1,成功,BK-4\n"
    ).encode()
    page = post_form(
        client,
        f"/finance/settlements/{batch['id']}",
        f"/finance/settlements/{batch['id']}/returns",
        {"file": (io.BytesIO(returned), "return.csv")},
    ).get_data(as_text=True)
    for words in ("没有这笔转账", "金额与这笔转账不符", "状态看不懂", "编号或金额不是数字"):
        assert words in page
    assert english_words(readable_text(page)) == []
