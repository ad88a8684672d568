"""Orders as the tests need them: reserved and paid through the registry's real services, or
bought through the public pages as a buyer does; and the farmers' share paid out (T+1)."""

import uuid
from datetime import date, timedelta
from typing import Any

from sqlite_utils import Database

from server import units
from server.payouts import settlement
from server.registry import orders
from tests import registry_world as rw
from tests.helpers_auth import csrf_token


def paid_order(
    db: Database,
    bundle_id: int,
    tonnes: int = 1,
    user: dict | None = None,
    *,
    reference: str | None = None,
    by: str = "user:3",
) -> dict[str, Any]:
    """An order of `tonnes` (for the enterprise `user`, or an individual), paid by bank
    transfer and confirmed by finance (`by`): its accruals are written with the payment."""
    made = rw.order(db, bundle_id, tonnes, user)
    reference = reference or f"BANK-{uuid.uuid4().hex[:12]}"
    return orders.confirm_payment(db, made, "bank", reference, by)


def buy(client, bundle, tonnes: int = 1, **extra) -> str:
    """Buy `tonnes` through the bundle page's form, as a visitor does; the order's public id."""
    form = {"csrf_token": csrf_token(client), "request_id": uuid.uuid4().hex, "tonnes": str(tonnes)}
    made = client.post(f"/bundles/{bundle['id']}/buy", data=form | extra)
    assert made.status_code == 303, made.get_data(as_text=True)
    return made.headers["Location"].rsplit("/", 1)[1]


def choose(client, public_id: str, method: str):
    """Choose how to pay on the order page (`wechat_native`, `alipay_page`…)."""
    return client.post(
        f"/orders/{public_id}/pay", data={"csrf_token": csrf_token(client), "method": method}
    )


def out_trade_no(db, public_id: str) -> str:
    """The merchant order number of the order's latest payment attempt."""
    return db.execute(
        """SELECT a.out_trade_no FROM payment_attempts a JOIN orders o ON o.id = a.order_id
           WHERE o.public_id = ? ORDER BY a.id DESC""",
        [public_id],
    ).fetchone()[0]


def order_row(db, public_id: str) -> dict:
    return next(db.query("SELECT * FROM orders WHERE public_id = ?", [public_id]))


def counts(db) -> tuple[int, int, int]:
    """How many certificates, accruals and refunds there are."""
    return tuple(
        db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
        for table in ("certificates", "accruals", "refunds")
    )


def later(days: int) -> str:
    """Beijing's date `days` from today, as ISO text."""
    return (date.fromisoformat(units.today()) + timedelta(days=days)).isoformat()


def pay_everyone(db, settle_on: str) -> list[dict]:
    """A T+1 batch settled on `settle_on`, every transfer in it recorded as sent."""
    batch, _ = settlement.create_batch(db, settle_on, 1, "user:1")
    rows = list(db.query("SELECT * FROM settlements WHERE batch_id = ?", [batch["id"]]))
    for row in rows:
        settlement.record_transfer(db, row["id"], f"TRF-{row['id']:06d}-9876", "user:1")
    return rows
