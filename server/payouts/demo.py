"""Payout history for the demo county, written through the real services: a few more paid
sales (their accruals queued for the ledger), and a T+1 batch with transfers recorded, one
of them failed and owed again. Idempotent: nothing happens once a batch exists."""

from datetime import date, timedelta

from flask import current_app
from sqlite_utils import Database

from server import units
from server.db import first, transaction
from server.errors import ApiError
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
    sold = []
    for n, (tonnes, beneficiary) in enumerate(SALES, start=1):
        data = {"request_id": f"demo-payout-sale-{n:04d}", "bundle_id": bundle["id"]}
        data["tonnes"] = tonnes
        if beneficiary:
            data["beneficiary"] = beneficiary
        try:
            order, _ = orders.reserve(db, data, None)
        except ApiError as error:  # the rest of the demo bundle stays for its visitors
            if error.code == "sold_out":
                break
            raise
        orders.confirm_payment(db, order, "digital_rmb", f"DEMO-DCEP-{n:04d}", "system")
        sold.append(order["id"])
    today = date.fromisoformat(units.today())
    _date_sales_back(db, sold, (today - timedelta(days=2)).isoformat())
    yesterday = (today - timedelta(days=1)).isoformat()  # a past T+1 batch, never a future one
    minimum = current_app.config.get("PAYOUT_MIN_TRANSFER_FEN", 100)
    batch, _ = settlement.create_batch(db, yesterday, minimum, "system")
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


def _date_sales_back(db: Database, order_ids: list[int], day: str) -> None:
    """Demo history only: the demo's own sales are dated `day` (Beijing) instead of today,
    so the T+1 batch they show is in the past and today's real sales go to the next one.
    The accruals' no-update guard is lifted for this and put back in the same transaction."""
    if not order_ids:
        return
    marks = ",".join("?" for _ in order_ids)
    (guard,) = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'accruals_no_update'"
    ).fetchone()
    paid_at = f"{day}T02:00:00.000Z"  # 10:00 in Beijing
    with transaction(db):
        db.execute("DROP TRIGGER accruals_no_update")
        db.execute(
            f"UPDATE accruals SET accrued_on = ? WHERE order_id IN ({marks})",  # noqa: S608
            [day, *order_ids],
        )
        db.execute(guard)
        db.execute(
            f"UPDATE sale_splits SET paid_on = ? WHERE order_id IN ({marks})",  # noqa: S608
            [day, *order_ids],
        )
        db.execute(
            f"UPDATE orders SET paid_at = ? WHERE id IN ({marks})",  # noqa: S608
            [paid_at, *order_ids],
        )
