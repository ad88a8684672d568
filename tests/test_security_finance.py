"""The finance batch page under attack and damage: kept by no cache, one unreadable
household does not take the page down, a bank account changed after the batch was made is
pointed out, and days whose sales are still coming in cannot be settled."""

from datetime import date, timedelta

import pytest

from server import households, pii, units
from server.db import get_db
from server.payouts import settlement
from server.registry import orders
from tests import registry_world as rw
from tests.conftest import BANK
from tests.helpers_auth import sign_in_page

OTHER_BANK = "6217000010001234563"


def make_batch(app) -> dict:
    """A T+1 batch of two households, each with a bank account."""
    db = get_db()
    bundle, _, grown = rw.stocked_bundle(
        db, app.world.user_ids["verifier"], households_count=2, trees_per_household=4
    )
    orders.confirm_payment(db, rw.order(db, bundle["id"], 2), "bank", "REC-1", "user:3")
    for code in grown["households"]:
        columns = households.personal_columns(code, bank_account=BANK)
        db.execute(
            "UPDATE households SET bank_account_enc = ? WHERE code = ?",
            [columns["bank_account_enc"], code],
        )
    made, _ = settlement.create_batch(db, "2099-01-01", 100, "user:3")
    return {"batch": {"id": made["id"], "codes": grown["households"]}}


@pytest.fixture(scope="session")
def batched(snapshots, seeded):
    return snapshots.extend("security_finance.batched", make_batch, on=seeded)


@pytest.fixture
def app(request, instance, seeded, batched):
    """Tests that take `batch` start from the world with the batch made."""
    start = batched if "batch" in request.fixturenames else seeded
    return start.app(instance)


@pytest.fixture
def batch(world) -> dict:
    return world.built["batch"]


def test_one_unreadable_household_is_shown_as_such_and_the_rest_still_listed(
    app, client, db, batch
):
    broken, fine = batch["codes"]
    with app.app_context():  # a ciphertext made for another household: it cannot be opened
        wrong = pii.encrypt(BANK, households.pii_context(fine, "bank_account"))
    db.execute("UPDATE households SET bank_account_enc = ? WHERE code = ?", [wrong, broken])
    db.conn.commit()
    sign_in_page(client, "finance")

    page = client.get(f"/finance/settlements/{batch['id']}")

    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "private, no-store"
    assert "无法解密" in page.text and BANK in page.text
    export = client.get(f"/finance/settlements/{batch['id']}/transfers.csv")
    assert export.status_code == 200
    assert broken not in export.text and fine in export.text


def test_a_bank_account_changed_after_the_batch_was_made_is_pointed_out(app, client, db, batch):
    swapped = batch["codes"][0]
    with app.app_context():
        columns = households.personal_columns(swapped, bank_account=OTHER_BANK)
    db.execute(
        "UPDATE households SET bank_account_enc = ? WHERE code = ?",
        [columns["bank_account_enc"], swapped],
    )
    db.conn.commit()
    sign_in_page(client, "finance")

    page = client.get(f"/finance/settlements/{batch['id']}")

    assert page.status_code == 200
    assert page.text.count("本批生成后银行卡号已变更") == 1


def test_a_day_whose_sales_are_still_coming_in_cannot_be_settled(client, db):
    csrf = sign_in_page(client, "finance")
    today = units.today()
    tomorrow = (date.fromisoformat(today) + timedelta(days=1)).isoformat()

    early = client.post("/finance/settlements", data={"csrf_token": csrf, "settle_on": tomorrow})

    assert early.status_code == 422
    assert db["settlement_batches"].count == 0
    made = client.post("/finance/settlements", data={"csrf_token": csrf, "settle_on": today})
    assert made.status_code == 303


def test_the_demo_history_is_in_the_past_and_leaves_no_future_batch(app, db, world):
    from server.payouts.demo import add_payout_history

    with app.app_context():
        rw.stocked_bundle(db, world.user_ids["verifier"], households_count=2, trees_per_household=3)
        add_payout_history(db)
    today = units.today()
    days = [r["settle_on"] for r in db.query("SELECT settle_on FROM settlement_batches")]
    assert days and all(day < today for day in days)
    assert all(r["accrued_on"] < today for r in db.query("SELECT accrued_on FROM accruals"))
    # a sale made today goes to the next batch, which can still be made
    with app.app_context():
        made, created = settlement.create_batch(db, today, 100, "user:3")
    assert created
