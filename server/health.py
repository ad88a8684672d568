"""`GET /healthz`: is the database migrated and writable, is the chain reachable."""

import sys
from typing import Any

from flask import Blueprint, current_app, jsonify

from server.access import PUBLIC, allow
from server.db import get_db
from server.migrations import migrations


def database_state() -> dict[str, Any]:
    try:
        db = get_db()
        pending = [m.name for m in migrations.pending(db)]
        db.execute("SELECT count(*) FROM audit_log").fetchone()
    except Exception as error:  # noqa: BLE001 - health reports any failure
        return {"ok": False, "error": type(error).__name__}
    return {
        "ok": not pending,
        "pending_migrations": pending,
        "journal_mode": db.execute("PRAGMA journal_mode").fetchone()[0],
    }


def chain_state() -> dict[str, Any]:
    url = current_app.config.get("CHAIN_RPC")
    if not url:
        return {"ok": True, "configured": False}
    limit = sys.getrecursionlimit()
    from web3 import HTTPProvider, Web3

    sys.setrecursionlimit(limit)  # a web3 dependency raises it process-wide on import

    try:
        w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 2}))
        return {
            "ok": True,
            "configured": True,
            "chain_id": w3.eth.chain_id,
            "block": w3.eth.block_number,
        }
    except Exception as error:  # noqa: BLE001 - an unreachable node is a state, not a crash
        return {"ok": False, "configured": True, "error": type(error).__name__}


bp = Blueprint("health", __name__)


@bp.get("/healthz")
@allow(PUBLIC)
def healthz():
    """Database and chain state; 503 when either is not ok."""
    database, chain = database_state(), chain_state()
    ok = database["ok"] and chain["ok"]
    return jsonify(status="ok" if ok else "degraded", database=database, chain=chain), (
        200 if ok else 503
    )
