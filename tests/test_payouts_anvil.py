"""The whole money flow against a real anvil: verify → issue → sell → pay → accrue → settle,
the node killed mid-flow and restarted from its state file, the worker finishing, and
`sipang reconcile` agreeing — until one accrual row is edited in the database."""

import signal

from click.testing import CliRunner

from server.chain import outbox
from server.chain.anvil import AnvilNode
from server.chain.deploy import attach
from server.chain.node import connect
from server.chain.service import anvil_state_path
from server.chain.worker import Worker
from server.cli import main
from server.payouts import settlement
from server.registry import orders
from tests import registry_world as rw
from tests.helpers_orders import paid_order


def start_node(app, nodes, port=None):
    node = AnvilNode(anvil_state_path(app.config["INSTANCE_PATH"]), port=port)
    nodes.append(node)
    chain = connect(app.config, "anvil", node.start())
    return node, chain


def reconcile(app):
    return CliRunner().invoke(main, ["reconcile", "--instance", app.config["INSTANCE_PATH"]])


def test_money_flow_survives_a_killed_node_and_reconciles(app, db, world, nodes):
    node, chain = start_node(app, nodes)
    attach(chain, db)
    node.stop(signal.SIGTERM)  # the state file now holds the deployed ledger
    node, chain = start_node(app, nodes, port=node.port)
    attach(chain, db)
    saved_head = chain.w3.eth.block_number

    with app.app_context():
        bundle, _, _ = rw.stocked_bundle(
            db, world.user_ids["verifier"], households_count=3, trees_per_household=6
        )
        enterprise = db["users"].get(world.user_ids["enterprise"])
        paid_order(db, bundle["id"], 2)
        held = paid_order(db, bundle["id"], 3, enterprise)
        orders.retire_held(
            db,
            held,
            {
                "request_id": "retire-part-1",
                "tonnes": 1,
                "beneficiary": "某化工公司",
                "reason": "生态环境损害赔偿",
            },
        )
    Worker(chain, db, batch_size=4, receipt_timeout=10).run_once(max_batches=3)
    assert outbox.status(db)["confirmed"] > 0

    node.rpc("evm_setAutomine", [False])  # the next batch waits in the mempool ...
    Worker(chain, db, batch_size=4, receipt_timeout=0.2).run_once(max_batches=1)
    assert outbox.status(db)["submitted"] > 0
    node.stop(signal.SIGKILL)  # ... when the node dies: every block since the dump is gone

    with app.app_context():  # business goes on while the node is down
        paid_order(db, bundle["id"], 1)
        batch, _ = settlement.create_batch(db, "2099-01-01", 100, "user:3")
        rows = list(db.query("SELECT id FROM settlements WHERE batch_id = ?", [batch["id"]]))
        assert len(rows) == 3
        settlement.record_transfer(db, rows[0]["id"], "ICBC-T1-0001", "user:3")
        settlement.record_failure(db, rows[1]["id"], "户名不符", "user:3")
        settlement.record_transfer(db, rows[2]["id"], "ICBC-T1-0003", "user:3")
    down = Worker(chain, db, retry_max_s=0)
    assert down.run_once()["error"] == 1

    node, chain = start_node(app, nodes, port=node.port)
    attach(chain, db)
    assert chain.w3.eth.block_number == saved_head  # restarted from its state file
    Worker(chain, db, batch_size=4, receipt_timeout=10).run_until_idle()
    status = outbox.status(db)
    assert status["confirmed"] == status["total"] and status["failed"] == 0
    kinds = set(status["by_kind"])
    assert kinds == {"anchor", "split_policy", "issue", "retire", "accrue", "settle"}
    node.stop(signal.SIGTERM)  # reconcile starts the node again from its state file

    result = reconcile(app)
    assert result.exit_code == 0, result.output
    assert "0 differences" in result.output

    tampered = db.execute("SELECT max(id) FROM accruals").fetchone()[0]
    with db.conn:  # someone with the database file edits a household's accrual
        db.execute("DROP TRIGGER accruals_no_update")
        db.execute("UPDATE accruals SET amount_fen = amount_fen + 100 WHERE id = ?", [tampered])
    result = reconcile(app)
    assert result.exit_code == 1
    assert f"accruals row {tampered}:" in result.output
    assert "differences" in result.output.splitlines()[-1]
