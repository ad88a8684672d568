"""The registry's ledger writes: queued in its own transactions, confirmed by the worker on
py-evm, written back to the report and certificate, shown on the verify page."""

import json

import pytest

from server.chain.deploy import attach
from server.chain.ledger_items import key32
from server.chain.node import connect_pyevm
from server.chain.worker import Worker
from server.db import first
from server.registry import chain_hooks, orders
from tests import registry_world as rw


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def outbox(db):
    return [
        (row["kind"], row["chain_key"], json.loads(row["payload"]))
        for row in db.query("SELECT kind, chain_key, payload FROM chain_outbox ORDER BY id")
    ]


def test_registry_queues_every_hook_and_the_verify_page_shows_the_ledger(
    app, client, db, world, ctx
):
    bundle, issued, _ = rw.stocked_bundle(
        db, world.user_ids["verifier"], households_count=2, trees_per_household=3
    )
    made = rw.order(db, bundle["id"], tonnes=2, beneficiary="李小明")
    orders.confirm_payment(db, made, "bank", "ICBC-CHAIN-1", "user:3")
    cert = first(db, "SELECT * FROM certificates")
    verification = first(db, "SELECT * FROM verifications WHERE status != 'assigned'")
    queued = outbox(db)
    kinds = [kind for kind, _, _ in queued]
    assert kinds[0] == "anchor"  # the report, at the decision
    anchor = queued[0][2]
    assert anchor == {
        "kind": "verification_report",
        "reference": f"verification:{verification['id']}",
        "root": "0x" + verification["report_sha256"],
    }
    assert ("split_policy", "split_policy:360423-0001-v1") in [(k, c) for k, c, _ in queued]
    policy = next(p for k, _, p in queued if k == "split_policy")
    assert policy["policy"] == "0x" + bundle["rules_sha256"]
    issues = [p for k, _, p in queued if k == "issue"]
    sellable = issued["tonnes"] - issued["buffer_tonnes"]
    assert [(p["lot"], p["first"], p["count"], p["buffer"]) for p in issues] == [
        ("SP-360423-0001-2026", 1, sellable, False),
        ("SP-360423-0001-2026", sellable + 1, issued["buffer_tonnes"], True),
    ]
    (retire,) = [p for k, _, p in queued if k == "retire"]
    assert retire == {
        "lot": "SP-360423-0001-2026",
        "first": 1,
        "count": 2,
        "certificate": "0x" + cert["sha256"],
    }
    assert kinds.count("accrue") == db["accruals"].count > 0

    page = client.get(f"/verify/{cert['id']}")
    assert page.status_code == 200
    assert 'data-ledger="pending"' in page.text

    chain = connect_pyevm()
    attach(chain, db)
    Worker(chain, db, receipt_timeout=5).run_until_idle()
    assert {r["state"] for r in db.query("SELECT state FROM chain_outbox")} == {"confirmed"}
    anchored = first(
        db, "SELECT report_anchor_tx FROM verifications WHERE id = ?", [verification["id"]]
    )
    tx = first(db, "SELECT tx_hash FROM chain_outbox WHERE kind = 'anchor'")["tx_hash"]
    assert anchored["report_anchor_tx"] == tx and tx.startswith("0x")
    cert = first(db, "SELECT * FROM certificates")
    retire_row = first(db, "SELECT * FROM chain_outbox WHERE kind = 'retire'")
    assert cert["chain_tx"] == retire_row["tx_hash"]
    functions = chain.ledger.functions
    assert functions.split_policies(key32("360423-0001-v1")).call().hex() == bundle["rules_sha256"]

    app.extensions[chain_hooks.LEDGER_EXTENSION] = chain.ledger
    page = client.get(f"/verify/{cert['id']}")
    assert 'data-ledger="confirmed"' in page.text
    assert retire_row["tx_hash"] in page.text and f"区块 {retire_row['block_number']}" in page.text
    shown = client.get(f"/api/v1/certificates/{cert['id']}").json["ledger"]
    assert shown["status"] == "confirmed" and shown["on_chain_matches"] is True
    assert shown["runs"][0]["tx_hash"] == retire_row["tx_hash"]

    # a certificate whose stored hash was altered no longer matches the ledger
    with db.conn:
        db.execute("UPDATE certificates SET sha256 = ? WHERE id = ?", ["0" * 64, cert["id"]])
    page = client.get(f"/verify/{cert['id']}")
    assert 'data-ledger="mismatch"' in page.text
