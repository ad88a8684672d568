"""`sipang reconcile` finds each edit an insider with the database file and every key in
the instance folder could make to what the money and the tonnes rest on: a measurement
behind an issued period, a retired tonne put back on sale, a paid order's amount, a
household's bank account, audit rows deleted or re-chained. A replaced door plate is not a
difference (the ledger names a household by its stable key)."""

import json

import pytest

from server import anchors, audit, households
from server.chain.deploy import attach
from server.chain.node import connect_pyevm
from server.chain.worker import Worker
from server.db import first
from server.payouts import settlement
from server.reconcile import reconcile
from server.registry import orders
from tests import registry_world as rw
from tests.conftest import BANK

OTHER_BANK = "6217000010001234563"  # passes Luhn: the attacker's card


@pytest.fixture
def flow(app, db, world):
    """Two households with bank accounts, issued, sold, accrued, settled and paid; the audit
    head anchored; everything on chain."""
    with app.app_context():
        bundle, issued, grown = rw.stocked_bundle(
            db, world.user_ids["verifier"], households_count=2, trees_per_household=4
        )
        for code in grown["households"]:
            columns = households.personal_columns(code, bank_account=BANK)
            db.execute(
                "UPDATE households SET bank_account_enc = ?, bank_account_masked = ? "
                "WHERE code = ?",
                [columns["bank_account_enc"], columns["bank_account_masked"], code],
            )
        made = rw.order(db, bundle["id"], 2)
        orders.confirm_payment(db, made, "bank", "ICBC-REC-1", "user:3")
        settlement.create_batch(db, "2099-01-01", 100, "user:3")
        for n, row in enumerate(db.query("SELECT id FROM settlements ORDER BY id")):
            settlement.record_transfer(db, row["id"], f"ICBC-T{n}-REC", "user:3")
        assert anchors.anchor_audit_head(db) is not None
    chain = connect_pyevm()
    attach(chain, db)
    Worker(chain, db, receipt_timeout=5).run_until_idle()
    return chain


def drop_triggers(db, table: str) -> None:
    """What an insider with the file does first: the schema's guards are only in the file."""
    for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", [table]
    ).fetchall():
        db.execute(f"DROP TRIGGER {name}")


def lines(app, db, chain) -> list[str]:
    differences, _ = reconcile(
        db,
        chain.ledger,
        app.config["CODE_KEY"],
        pii_key=app.config["PII_KEY"],
        audit_key=app.config["AUDIT_KEY"],
    )
    return [d.line() for d in differences]


def test_an_untouched_database_reconciles_clean(app, db, flow):
    assert lines(app, db, flow) == []


def test_a_measurement_behind_an_issued_period_edited_is_found(app, db, flow):
    issuance = first(db, "SELECT id, calculation_id FROM issuances")
    measurement = first(
        db,
        "SELECT end_measurement_id AS id FROM credit_tree_lines WHERE calculation_id = ?",
        [issuance["calculation_id"]],
    )
    db.execute("UPDATE measurements SET dbh_mm = dbh_mm * 3 WHERE id = ?", [measurement["id"]])
    db.conn.commit()

    found = lines(app, db, flow)

    assert [line.split(":")[0] for line in found] == [f"issuances row {issuance['id']}"]
    assert "measurements behind the issuance" in found[0]


def test_a_retired_tonne_put_back_on_sale_is_found(app, db, flow):
    serial = first(db, "SELECT serial FROM retirements ORDER BY serial")["serial"]
    drop_triggers(db, "tonnes")
    db.execute(
        "UPDATE tonnes SET status = 'available', order_id = NULL, certificate_id = NULL "
        "WHERE serial = ?",
        [serial],
    )
    db.conn.commit()

    found = lines(app, db, flow)

    assert any(line.startswith(f"tonnes row {serial}: retired tonne") for line in found)
    assert any("tonnes retired on chain" in line for line in found)


def test_a_retired_tonne_put_back_with_its_retirement_deleted_is_found_from_the_chain(
    app, db, flow
):
    serial = first(db, "SELECT serial FROM retirements ORDER BY serial")["serial"]
    with db.conn:
        drop_triggers(db, "retirements")
        drop_triggers(db, "tonnes")
        db.execute("DELETE FROM retirements WHERE serial = ?", [serial])
        db.execute(
            "UPDATE tonnes SET status = 'available', order_id = NULL, certificate_id = NULL "
            "WHERE serial = ?",
            [serial],
        )

    found = lines(app, db, flow)

    assert any(
        "tonnes retired on chain: database '1 retired', chain '2 retired'" in line for line in found
    ), found


def test_a_paid_orders_amount_changed_is_found(app, db, flow):
    order = first(db, "SELECT id FROM orders WHERE paid_at IS NOT NULL")
    db.execute(
        "UPDATE orders SET price_fen = price_fen * 10, amount_fen = amount_fen * 10 WHERE id = ?",
        [order["id"]],
    )
    db.conn.commit()

    found = lines(app, db, flow)

    assert [line.split(":")[0] for line in found] == [f"orders row {order['id']}"]


def test_a_bank_account_swapped_with_the_pii_key_is_found(app, db, flow):
    household = first(
        db,
        "SELECT h.id, h.code FROM households h JOIN settlements s "
        "ON s.household_id = h.id ORDER BY h.id",
    )
    with app.app_context():
        columns = households.personal_columns(household["code"], bank_account=OTHER_BANK)
    db.execute(
        "UPDATE households SET bank_account_enc = ?, bank_account_masked = ? WHERE id = ?",
        [columns["bank_account_enc"], columns["bank_account_masked"], household["id"]],
    )
    db.conn.commit()

    found = lines(app, db, flow)

    assert len(found) == 1
    assert found[0].startswith(f"households row {household['id']}: bank details differ")
    assert OTHER_BANK not in found[0] and BANK not in found[0]  # hashes only


def test_audit_rows_deleted_from_the_tail_are_found(app, db, flow):
    with db.conn:
        drop_triggers(db, "audit_log")
        top = db.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
        db.execute("DELETE FROM audit_log WHERE seq > ?", [top - 3])

    assert audit.verify_chain(db, bytes.fromhex(app.config["AUDIT_KEY"]))["intact"]
    found = lines(app, db, flow)

    assert any(line.startswith("audit_log row ?: audit head anchored on chain") for line in found)


def test_an_audit_log_re_chained_with_audit_key_is_found(app, db, flow):
    key = bytes.fromhex(app.config["AUDIT_KEY"])
    with db.conn:
        drop_triggers(db, "audit_log")
        target = db.execute(
            "SELECT min(seq) FROM audit_log WHERE action = 'payout.batch_created'"
        ).fetchone()[0]
        db.execute(
            "UPDATE audit_log SET detail = ? WHERE seq = ?",
            [json.dumps({"households": 0}), target],
        )
        prev = db.execute("SELECT hash FROM audit_log WHERE seq = ?", [target - 1]).fetchone()[0]
        for row in list(db.query("SELECT * FROM audit_log WHERE seq >= ? ORDER BY seq", [target])):
            row["prev_hash"] = prev
            row["hash"] = audit._row_hash(key, prev, row)
            db.execute(
                "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?",
                [row["prev_hash"], row["hash"], row["seq"]],
            )
            prev = row["hash"]

    assert audit.verify_chain(db, key)["intact"]  # the log alone says it is fine
    found = lines(app, db, flow)

    assert any(
        "audit head anchored on chain (rows deleted or re-chained)" in line for line in found
    ), found


def test_a_replaced_door_plate_reconciles_clean(app, db, flow):
    household = first(
        db, "SELECT h.* FROM households h JOIN accruals a ON a.household_id = h.id ORDER BY h.id"
    )
    with app.app_context():
        households.replace_plate(db, household, "lost")
        anchors.anchor_audit_head(db)
    Worker(flow, db, receipt_timeout=5).run_until_idle()

    assert lines(app, db, flow) == []


def test_the_audit_head_is_anchored_once_per_interval_and_only_when_it_moved(app, db):
    with app.app_context():
        first_seq = anchors.anchor_audit_head(db, 600)
        assert first_seq == db.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
        assert anchors.anchor_audit_head(db, 0) is None  # the head did not move
        audit.record(db, "test.moved", "test:1")
        assert anchors.anchor_audit_head(db, 600) is None  # moved, but too soon
        assert anchors.anchor_audit_head(db, 0) == first_seq + 1
    keys = [
        r[0]
        for r in db.execute(
            "SELECT chain_key FROM chain_outbox WHERE chain_key LIKE 'anchor:audit_head:%'"
        )
    ]
    assert keys == [
        f"anchor:audit_head:audit:{first_seq}",
        f"anchor:audit_head:audit:{first_seq + 1}",
    ]
