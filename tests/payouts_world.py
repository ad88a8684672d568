"""Payout states for the route matrix (tests/test_access.py): the registry's sample (paid
orders, so households are owed) with a T+1 batch made on top."""

import io
import re
from typing import Any


def payout_sample(app, world, endpoint: str, rule: str, caller: str | None, restore):
    """(url, request kwargs) for a finance route, or None for other routes; `restore()` puts
    the registry sample in place of the test's database."""
    from server.access import rule_for
    from server.db import first, get_db
    from server.payouts import settlement

    if endpoint.split(".")[0] not in ("payouts", "payouts_api"):
        return None
    with app.app_context():
        access = rule_for(endpoint)
    if not (access.public or caller in access.roles):  # refused before the view runs
        return re.sub(r"<int:\w+>", "1", rule), {}
    restore()
    with app.app_context():
        db = get_db()
        batch, _ = settlement.create_batch(db, "2099-01-01", 1, "user:test")
        row = first(db, "SELECT * FROM settlements WHERE batch_id = ? LIMIT 1", [batch["id"]])
    url = rule.replace("<int:batch_id>", str(batch["id"]))
    url = url.replace("<int:settlement_id>", str(row["id"]))
    bodies: dict[str, Any] = {
        "payouts.create_batch": {"data": {"settle_on": "2026-01-02"}},
        "payouts.record": {"data": {"outcome": "paid", "reference": "BK-MATRIX-0001"}},
        "payouts.upload_return": {
            "data": {
                "file": (
                    io.BytesIO(
                        f"明细编号,amount_fen,状态,流水号\n{row['id']},{row['amount_fen']},成功,BK-1\n".encode()
                    ),
                    "return.csv",
                )
            }
        },
    }
    if endpoint in bodies:
        return url, bodies[endpoint]
    if access.body is not None:
        return url, {"json": dict(access.body["example"])}
    return url, {}
