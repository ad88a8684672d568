"""The local ledger node survives a crash: it saves its state every few seconds, so a node
killed outright comes back with the ledger, and the server never deploys a second one."""

import json
import signal
import time

from server import create_app
from server.chain import outbox
from server.chain.service import ChainService
from server.db import connect
from tests.test_chain_service import queue_anchors


def test_a_node_killed_outright_keeps_the_ledger_and_none_is_deployed_again(instance):
    queue_anchors(instance, 2, "crash")
    app = create_app({"INSTANCE_PATH": str(instance)})
    service = ChainService(app.config)
    service.start()
    db = connect(app.config["DATABASE"])
    try:
        for _ in range(600):  # bounded polls, no timing assertion
            if outbox.status(db)["confirmed"] == 2:
                break
            time.sleep(0.05)
        assert outbox.status(db)["confirmed"] == 2
        recorded = json.loads((instance / "chain" / "node.json").read_text())
        assert recorded["url"] == service.node.url  # for reconcile and backup meanwhile
        deployed = service.deployment
        for _ in range(600):  # until a periodic dump holds the deployment's block
            if (service.node.dumped_block() or -1) >= deployed["block_number"]:
                break
            time.sleep(0.05)
        service.node.process.send_signal(signal.SIGKILL)  # no state written at exit
        service.node.process.wait(timeout=30)
    finally:
        service.stop()
    assert not (instance / "chain" / "node.json").exists()

    again = ChainService(app.config)
    try:
        again.connect()
        assert again.deployment["address"] == deployed["address"]
    finally:
        again.stop()
    assert db["chain_deployments"].count == 1
    db.close()
