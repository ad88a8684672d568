"""Orders as the tests need them: reserved and paid through the registry's real services."""

import uuid
from typing import Any

from sqlite_utils import Database

from server.registry import orders
from tests import registry_world as rw


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
