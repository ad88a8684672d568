"""The ledger client: connection engines, contract deployment, the chain outbox and its worker.

Callers queue ledger writes with the functions of `server.chain.outbox` (re-exported here)
inside their own database transaction; `server.chain.worker.Worker` sends them.
"""

from server.chain.ledger_items import ANCHOR_KINDS, county_salt, household_hash
from server.chain.outbox import (
    OutboxConflict,
    accrue,
    anchor,
    enqueue,
    issue_range,
    retire_range,
    set_split_policy,
    settle,
    status,
)

__all__ = [
    "ANCHOR_KINDS",
    "county_salt",
    "household_hash",
    "OutboxConflict",
    "accrue",
    "anchor",
    "enqueue",
    "issue_range",
    "retire_range",
    "set_split_policy",
    "settle",
    "status",
]
