"""`GET /api/v1/chain/status`: how the chain outbox is doing.

Read by the bureau (it watches that every payout reaches the ledger), finance (its
settlements go there) and admins. The figures are counts and block numbers only, the same
for every county, so the route is not scoped to one.
"""

from flask import Blueprint, jsonify

from server.access import allow
from server.chain.outbox import status
from server.db import get_db

bp = Blueprint("chain", __name__)


@bp.get("/api/v1/chain/status")
@allow("admin", "bureau", "finance")
def chain_status():
    """Chain outbox: pending, submitted, confirmed, failed, last block, confirmation p50/p95."""
    return jsonify(status(get_db()))
