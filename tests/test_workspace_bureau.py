"""The bureau's workspace: monthly trends and their spreadsheet, progress per village, the
map drawn from village coordinates, and the ledger check behind a button."""

import io
from datetime import datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from server import units
from server.chain import outbox
from server.chain.deploy import attach
from server.chain.node import connect_pyevm
from server.chain.worker import Worker
from server.db import get_db
from server.registry import orders
from server.registry.chain_hooks import LEDGER_EXTENSION
from server.workspace import trends
from tests import registry_world as rw
from tests.workspace_helpers import post_form, sign_in_form


def sell_two_tonnes(app) -> dict:
    """A published bundle of village B with one paid individual order of 2 tonnes."""
    db = get_db()
    bundle, issued, grown = rw.stocked_bundle(
        db, app.world.user_ids["verifier"], households_count=2, trees_per_household=12
    )
    made = rw.order(db, bundle["id"], 2)
    paid = orders.confirm_payment(db, made, "bank", "ICBC-TREND-0001", "user:3")
    return {"sold": {"bundle": bundle, "issued": issued, "grown": grown, "order": paid}}


@pytest.fixture(scope="session")
def sold_world(snapshots, seeded):
    return snapshots.extend("workspace_bureau.sold", sell_two_tonnes, on=seeded)


@pytest.fixture
def app(request, instance, seeded, sold_world):
    """Tests that take `sold` start from the world with the sale made."""
    start = sold_world if "sold" in request.fixturenames else seeded
    return start.app(instance)


@pytest.fixture
def sold(world) -> dict:
    return world.built["sold"]


def test_the_month_of_a_sale_is_its_beijing_month(db, sold):
    this_month = trends.last_months(1)[0]
    db.execute(
        "UPDATE orders SET paid_at = ? WHERE id = ?",
        [f"{this_month}-01T00:30:00Z", sold["order"]["id"]],
    )
    db.conn.commit()
    months = {m["month"]: m for m in trends.monthly(db, 1)}
    assert months[this_month]["sold_t"] == 2
    assert months[this_month]["sold_fen"] == sold["order"]["amount_fen"]
    assert sum(m["issued_t"] for m in months.values()) == sold["issued"]["tonnes"]


def test_a_late_utc_evening_counts_in_the_next_beijing_month(db, sold):
    db.execute(
        "UPDATE orders SET paid_at = '2026-01-31T17:00:00Z' WHERE id = ?", [sold["order"]["id"]]
    )
    db.conn.commit()
    row = db.execute(
        "SELECT substr(datetime(paid_at, '+8 hours'), 1, 7) FROM orders WHERE id = ?",
        [sold["order"]["id"]],
    ).fetchone()
    assert row[0] == "2026-02"


def test_trends_export_as_a_spreadsheet_that_sums(client, sold):
    sign_in_form(client, "bureau")
    page = client.get("/bureau/trends").get_data(as_text=True)
    assert "武宁县 月度趋势" in page and units.month(trends.last_months(1)[0]) in page

    response = client.get("/bureau/trends.xlsx")
    sheet = load_workbook(io.BytesIO(response.data)).active
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert cells[0][0] == "武宁县四旁碳汇月度趋势"
    assert cells[1][0].startswith("导出时间：") and "T" not in cells[1][0]
    assert cells[2][:3] == ["月份", "复测树木（棵）", "签发（吨）"]
    data = cells[3:]
    assert len(data) == 12
    assert all(isinstance(r[0], datetime) and r[0].day == 1 for r in data)  # dates as dates
    assert sum(r[3] for r in data) == 2  # tonnes sold, numbers
    assert round(sum(r[4] for r in data) * 100) == sold["order"]["amount_fen"]  # yuan, numbers
    assert sheet.cell(row=4, column=5).number_format == "#,##0.00"
    assert sheet.cell(row=4, column=1).number_format == 'yyyy"年"m"月"'

    csv_text = client.get("/bureau/trends.csv").get_data(as_text=True)
    assert csv_text.lstrip("\ufeff").splitlines()[0].startswith("月份,复测树木（棵）")


def test_the_xlsx_village_export_has_money_as_numbers(client, sold):
    sign_in_form(client, "bureau")
    sheet = load_workbook(io.BytesIO(client.get("/bureau/export.xlsx?level=village").data)).active
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    total = rows[-1]
    assert total[1] == "武宁县合计"
    assert isinstance(total[5], float | int | Decimal)
    assert round(total[5] * 100) == sold["order"]["farmers_fen"]


def test_progress_and_map_lead_to_a_village_and_its_households(client, db, sold, world):
    sign_in_form(client, "bureau")
    progress = client.get("/bureau/progress").get_data(as_text=True)
    assert "长水村" in progress and "西山村" in progress
    assert "已签发" in progress and "通过" in progress  # village B's verified, issued period

    page = client.get("/bureau/map").get_data(as_text=True)
    code = sold["grown"]["village"]["code"]
    assert f'<a href="/bureau/villages/{code}"' in page
    assert f'<a href="/bureau/villages/{world.village_a}"' in page  # 29.26, 115.1
    assert "没有坐标的村" in page  # village B of the seed has none
    village = client.get(f"/bureau/villages/{code}").get_data(as_text=True)
    household = sold["grown"]["households"][0]
    assert f"/bureau/households/{household}" in village


def test_the_ledger_button_says_when_no_node_answers(client):
    sign_in_form(client, "bureau")
    page = post_form(client, "/bureau/ledger", "/bureau/ledger", {}).get_data(as_text=True)
    assert "现在连不上账本节点" in page


def test_the_ledger_button_compares_with_the_chain(app, client, db, sold):
    chain = connect_pyevm()
    attach(chain, db)
    Worker(chain, db, receipt_timeout=5).run_until_idle()
    assert outbox.status(db)["confirmed"] == outbox.status(db)["total"]
    app.extensions[LEDGER_EXTENSION] = chain.ledger
    sign_in_form(client, "bureau")

    page = post_form(client, "/bureau/ledger", "/bureau/ledger", {}).get_data(as_text=True)
    assert "一致：逐条核对了" in page

    with db.conn:
        db.execute("UPDATE certificates SET sha256 = ?", ["1" * 64])
    page = post_form(client, "/bureau/ledger", "/bureau/ledger", {}).get_data(as_text=True)
    assert "处不一致" in page and "证书" in page and "与链上不一致" in page
