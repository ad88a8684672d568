"""The chain status (dashboards and GET /api/v1/chain/status) reads through indexes: no query
sorts or scans the whole outbox, which holds a row for every ledger write ever made."""

import hashlib

from server.chain import outbox
from server.db import connect, migrate, transaction


def test_status_queries_use_indexes_and_never_sort_the_outbox(tmp_path):
    db = connect(tmp_path / "plan.db")
    migrate(db)
    with transaction(db):
        for n in range(3000):
            root = hashlib.sha256(str(n).encode()).hexdigest()
            outbox.anchor(db, "verification_report", f"verification:{n}", root)
        db.execute(
            "UPDATE chain_outbox SET state = 'confirmed', confirm_ms = id % 900 WHERE id % 10 != 0"
        )
    db.execute("ANALYZE")
    statements = []
    db.conn.set_trace_callback(statements.append)
    figures = outbox.status(db)
    db.conn.set_trace_callback(None)
    assert figures["confirmed"] == 2700 and figures["confirmation_ms"]["samples"] == 2700

    selects = [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]
    assert any("chain_outbox" in sql for sql in selects)
    for sql in selects:
        plan = " | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql))
        assert "TEMP B-TREE" not in plan, (sql, plan)
        if "chain_outbox" in sql:
            assert "USING" in plan and "INDEX" in plan, (sql, plan)
