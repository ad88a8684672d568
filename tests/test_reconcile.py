"""`server.reconcile` on py-evm: a database and ledger that agree, then each kind of
tampering (database or chain) named by its table and row."""

import pytest

from server.chain import outbox
from server.chain.deploy import attach
from server.chain.node import connect_pyevm
from server.chain.worker import Worker
from server.db import first, transaction
from server.payouts import settlement
from server.reconcile import reconcile
from server.registry import orders
from tests import registry_world as rw


@pytest.fixture
def flow(app, db, world):
    """Verified, issued, sold (individual and enterprise), accrued, settled; all on chain."""
    with app.app_context():
        bundle, _, _ = rw.stocked_bundle(
            db, world.user_ids["verifier"], households_count=2, trees_per_household=6
        )
        made = rw.order(db, bundle["id"], 2)
        orders.confirm_payment(db, made, "bank", "ICBC-REC-1", "user:3")
        enterprise = db["users"].get(world.user_ids["enterprise"])
        held = rw.order(db, bundle["id"], 1, enterprise)
        orders.confirm_payment(db, held, "bank", "ICBC-REC-2", "user:3")
        batch, _ = settlement.create_batch(db, "2099-01-01", 100, "user:3")
        first_row, second_row = db.query("SELECT id FROM settlements ORDER BY id")
        settlement.record_transfer(db, first_row["id"], "ICBC-T1-REC1", "user:3")
        settlement.record_failure(db, second_row["id"], "退票", "user:3")
    chain = connect_pyevm()
    attach(chain, db)
    Worker(chain, db, receipt_timeout=5).run_until_idle()
    assert outbox.status(db)["confirmed"] == outbox.status(db)["total"]
    return chain


def lines(app, db, chain) -> list[str]:
    differences, checked = reconcile(db, chain.ledger, app.config["CODE_KEY"])
    assert checked > 10
    return [d.line() for d in differences]


def test_a_database_and_ledger_that_agree_have_no_differences(app, db, flow):
    assert lines(app, db, flow) == []


def test_tampered_rows_are_named_by_table_and_row(app, db, flow):
    cert = first(db, "SELECT id FROM certificates")["id"]
    verification = first(db, "SELECT id FROM verifications WHERE report_sha256 IS NOT NULL")["id"]
    accrual = first(db, "SELECT id FROM accruals ORDER BY id")["id"]
    batch = first(db, "SELECT id FROM settlement_batches")["id"]
    with db.conn:
        db.execute("DROP TRIGGER settlements_status_moves")
        db.execute(
            "UPDATE settlements SET status = 'paid', transfer_reference = 'X-1' "
            "WHERE status = 'failed'"
        )
        db.execute("UPDATE certificates SET sha256 = ? WHERE id = ?", ["1" * 64, cert])
        db.execute(
            "UPDATE verifications SET report_sha256 = ? WHERE id = ?", ["2" * 64, verification]
        )
        db.execute("DROP TRIGGER accruals_no_update")
        db.execute(
            "UPDATE accruals SET household_hash = ? WHERE id = ?", ["0x" + "3" * 64, accrual]
        )
    found = lines(app, db, flow)
    assert any(line.startswith(f"certificates row {cert}: retirement") for line in found)
    assert any(
        line.startswith(f"verifications row {verification}: report anchor") for line in found
    )
    assert any(line.startswith(f"accruals row {accrual}: household hash") for line in found)
    assert any(line.startswith(f"settlement_batches row {batch}: batch anchor") for line in found)
    assert any(line.startswith("settlements row") for line in found)


def test_a_payment_on_chain_the_database_does_not_know_is_found(app, db, flow):
    row = first(db, "SELECT * FROM accruals ORDER BY id")
    with transaction(db):  # a write that reached the chain without its business row
        outbox.accrue(db, "accrual:forged-1", row["household_hash"], 500)
    Worker(flow, db, receipt_timeout=5).run_until_idle()
    (difference,) = reconcile(db, flow.ledger, app.config["CODE_KEY"])[0]
    assert (difference.table, difference.row) == ("households", row["household_id"])
    assert difference.item == "totals (accrued, settled) in fen"
    assert difference.chain[0] == difference.database[0] + 500
    assert not difference.waiting


def test_a_pending_row_is_reported_as_waiting(app, db, flow):
    with app.app_context():
        bundle = first(db, "SELECT id FROM bundles WHERE status = 'on_sale'")
        made = rw.order(db, bundle["id"], 1)
        orders.confirm_payment(db, made, "bank", "ICBC-REC-3", "user:3")
    differences, _ = reconcile(db, flow.ledger, app.config["CODE_KEY"])
    assert differences and all(d.waiting for d in differences)
    assert {d.table for d in differences} >= {"accruals", "certificates", "households"}
