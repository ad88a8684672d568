"""Payout history for the demo county, written through the real services: a few more paid
sales (their accruals queued for the ledger), and a T+1 batch with transfers recorded, one
of them failed and owed again. Idempotent: nothing happens once a batch exists."""

from datetime import date, timedelta

from flask import current_app
from sqlite_utils import Database

from server.db import first
from server.payouts import settlement
from server.registry import orders

SALES = ((1, "张家，抵消一次家庭旅行"), (2, None), (1, "王老师的班级植树纪念"), (5, None))


def add_payout_history(db: Database) -> None:
    """Sell a few more tonnes of the demo bundle and settle the households T+1."""
    if first(db, "SELECT 1 FROM settlement_batches"):
        return
    bundle = first(db, "SELECT id FROM bundles WHERE status = 'on_sale' ORDER BY id")
    if bundle is None:
        return
    for n, (tonnes, beneficiary) in enumerate(SALES, start=1):
        data = {"request_id": f"demo-payout-sale-{n:04d}", "bundle_id": bundle["id"]}
        data["tonnes"] = tonnes
        if beneficiary:
            data["beneficiary"] = beneficiary
        try:
            order, _ = orders.reserve(db, data, None)
        except Exception:  # noqa: BLE001 - a small demo bundle may be sold out
            break
        orders.confirm_payment(db, order, "digital_rmb", f"DEMO-DCEP-{n:04d}", "system")
    tomorrow = (date.fromisoformat(settlement.today_beijing()) + timedelta(days=1)).isoformat()
    minimum = current_app.config.get("PAYOUT_MIN_TRANSFER_FEN", 100)
    batch, _ = settlement.create_batch(db, tomorrow, minimum, "system")
    rows = [
        r["id"]
        for r in db.query(
            "SELECT id FROM settlements WHERE batch_id = ? ORDER BY id", [batch["id"]]
        )
    ]
    for settlement_id in rows[:-1]:
        settlement.record_transfer(db, settlement_id, f"DEMO-T1-{settlement_id:06d}", "system")
    if rows:
        settlement.record_failure(db, rows[-1], "演示：户名与账户不符，退回", "system")
