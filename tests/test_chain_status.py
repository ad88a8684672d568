"""`GET /api/v1/chain/status` over the real app."""

from server.chain import outbox
from server.chain.ledger_items import household_hash
from server.db import transaction
from tests.conftest import bearer


def test_chain_status_reports_the_outbox(client, world, db):
    with transaction(db):
        outbox.anchor(db, "sync_batch", "device-1:1-25", b"\x01" * 32)
        outbox.accrue(db, "accrual:1", household_hash(b"s", world.household_a), 1230)
    response = client.get("/api/v1/chain/status", headers=bearer(world.tokens["bureau"]))
    assert response.status_code == 200
    body = response.json
    assert (body["pending"], body["confirmed"], body["failed"], body["total"]) == (2, 0, 0, 2)
    assert body["last_block"] is None
    assert body["confirmation_ms"] == {"p50": None, "p95": None, "samples": 0}
    assert body["by_kind"]["accrue"]["pending"] == 1
    assert body["oldest_waiting_at"].endswith("Z")


def test_chain_status_is_not_for_measurers_or_buyers(client, world):
    for role in ("measurer", "enterprise", "verifier"):
        response = client.get("/api/v1/chain/status", headers=bearer(world.tokens[role]))
        assert response.status_code == 403
