"""The chain outbox against a real anvil process that is killed mid-batch and restarted."""

import signal
import threading

import pytest
from eth_account import Account

from server.chain import outbox
from server.chain.anvil import AnvilNode
from server.chain.deploy import attach
from server.chain.ledger_items import household_hash, key32
from server.chain.node import connect_url
from server.chain.worker import Worker
from server.db import connect, migrate, transaction

HOUSEHOLDS = [household_hash(b"salt", f"360423101201-{n:04d}-K7") for n in range(1, 4)]
LOT = "SP-360423-0001-2025"


@pytest.fixture
def db(tmp_path):
    database = connect(tmp_path / "sipang.db")
    migrate(database)
    yield database
    database.close()


def write_business(db, anchors: int = 20) -> None:
    """What the registry and payouts will write: anchors, issuance, accruals, a settlement."""
    with transaction(db):
        for n in range(anchors):
            outbox.anchor(db, "sync_batch", f"device-7:{n}", bytes([n + 1]) * 32)
    with transaction(db):
        outbox.issue_range(db, LOT, 1, 40, b"\x0a" * 32)
        outbox.issue_range(db, LOT, 41, 10, b"\x0b" * 32, buffer=True)
        outbox.retire_range(db, LOT, 1, 25, b"\x0c" * 32)
    with transaction(db):
        for n in range(9):
            outbox.accrue(db, f"accrual:{n}", HOUSEHOLDS[n % 3], 100 + n)
        outbox.settle(db, "settlement:0", HOUSEHOLDS[0], 100)


def assert_written_exactly_once(chain, db, anchors: int = 20) -> None:
    assert outbox.status(db)["confirmed"] == db["chain_outbox"].count
    events = chain.ledger.events
    assert len(events.Anchored().get_logs(from_block=0)) == anchors
    assert len(events.Issued().get_logs(from_block=0)) == 2
    assert len(events.Retired().get_logs(from_block=0)) == 1
    assert len(events.Accrued().get_logs(from_block=0)) == 9
    assert len(events.Settled().get_logs(from_block=0)) == 1
    functions = chain.ledger.functions
    for n in range(anchors):
        assert functions.anchors(1, key32(f"device-7:{n}")).call() == bytes([n + 1]) * 32
    assert functions.issued(key32(LOT)).call() == 50
    owed = [functions.owed(bytes.fromhex(h[2:])).call() for h in HOUSEHOLDS]
    assert owed == [100 + 103 + 106 - 100, 101 + 104 + 107, 102 + 105 + 108]
    assert db["chain_deployments"].count == 1


def test_anvil_killed_mid_batch_restarts_from_its_state_file(tmp_path, db, nodes):
    state = tmp_path / "instance" / "chain" / "anvil-state.json"
    node = AnvilNode(state)
    nodes.append(node)
    node.start()
    key = Account.create()
    chain = connect_url(node.url, key, "anvil")
    attach(chain, db)
    write_business(db)
    Worker(chain, db, batch_size=8, receipt_timeout=10).run_once(max_batches=1)
    assert outbox.status(db)["confirmed"] == 8

    node.rpc("evm_setAutomine", [False])  # the next batch waits in the mempool ...
    Worker(chain, db, batch_size=8, receipt_timeout=0.2).run_once(max_batches=1)
    assert outbox.status(db)["submitted"] == 8
    node.stop(signal.SIGTERM)  # ... when the node goes down: its state is dumped, the pool lost
    assert state.exists()

    down = Worker(chain, db, batch_size=8, retry_max_s=0)
    assert down.run_once()["error"] == 1  # the node is down: back off, lose nothing
    assert outbox.status(db)["submitted"] == 8

    node = AnvilNode(state, port=node.port)
    nodes.append(node)
    node.start()
    chain = connect_url(node.url, key, "anvil")
    assert attach(chain, db)["id"] == 1  # the recorded deployment survived the restart
    Worker(chain, db, batch_size=8, receipt_timeout=10).run_until_idle()
    assert_written_exactly_once(chain, db)
    txs = list(db.query("SELECT state, count(*) AS n FROM chain_txs GROUP BY state"))
    assert txs == [{"state": "mined", "n": db["chain_txs"].count}]


def test_anvil_killed_hard_loses_blocks_and_the_worker_writes_them_again(tmp_path, db, nodes):
    state = tmp_path / "anvil-state.json"
    node = AnvilNode(state)
    nodes.append(node)
    node.start()
    key = Account.create()
    chain = connect_url(node.url, key, "anvil")
    attach(chain, db)
    node.stop(signal.SIGTERM)  # the state file now holds the deployment
    node = AnvilNode(state, port=node.port)
    nodes.append(node)
    node.start()
    chain = connect_url(node.url, key, "anvil")
    attach(chain, db)
    saved_head = chain.w3.eth.block_number
    write_business(db, anchors=30)
    Worker(chain, db, batch_size=5, receipt_timeout=10).run_once(max_batches=4)
    assert outbox.status(db)["confirmed"] == 20
    node.stop(signal.SIGKILL)  # no dump at exit: every block since the last dump is gone

    node = AnvilNode(state, port=node.port)
    nodes.append(node)
    node.start()
    chain = connect_url(node.url, key, "anvil")
    attach(chain, db)
    assert chain.w3.eth.block_number == saved_head
    assert outbox.status(db)["confirmed"] == 20  # the database does not know yet
    Worker(chain, db, batch_size=5, receipt_timeout=10).run_until_idle()
    assert_written_exactly_once(chain, db, anchors=30)


def test_a_transaction_the_node_refuses_is_signed_again_later(tmp_path, db, nodes):
    node = AnvilNode()
    nodes.append(node)
    node.start()
    chain = connect_url(node.url, Account.create(), "anvil")
    attach(chain, db)
    write_business(db, anchors=3)
    node.rpc("anvil_setBalance", [chain.address, "0x0"])  # cannot pay for gas
    assert Worker(chain, db, retry_max_s=0).run_once()["error"] == 1
    assert outbox.status(db)["pending"] == db["chain_outbox"].count
    refused = next(db.query("SELECT state, error FROM chain_txs"))
    assert refused["state"] == "dropped"
    assert "refused by the node" in refused["error"]
    connect_url(node.url, chain.account, "anvil")  # funded again
    Worker(chain, db).run_until_idle()
    assert_written_exactly_once(chain, db, anchors=3)


def test_a_nonce_gap_left_by_a_refused_transaction_is_filled(tmp_path, db, nodes):
    node = AnvilNode()
    nodes.append(node)
    node.start()
    chain = connect_url(node.url, Account.create(), "anvil")
    attach(chain, db)
    with transaction(db):
        for n in range(6):
            outbox.anchor(db, "sync_batch", f"device-7:{n}", bytes([n + 1]) * 32)
    crashed = Worker(chain, db, batch_size=3)
    lower = crashed.sign_batch(crashed.next_batch())
    higher = crashed.sign_batch(crashed.next_batch())
    assert higher["nonce"] == lower["nonce"] + 1
    crashed.broadcast(higher)  # it waits in the node's queue behind the missing nonce

    node.rpc("anvil_setBalance", [chain.address, "0x0"])
    assert Worker(chain, db, receipt_timeout=0.2, retry_max_s=0).run_once()["error"] == 1
    assert next(db.query("SELECT state FROM chain_txs WHERE id = ?", [lower["id"]]))["state"] == (
        "dropped"
    )
    connect_url(node.url, chain.account, "anvil")  # funded again; the lower nonce stays unused
    Worker(chain, db, receipt_timeout=0.5).run_until_idle()  # waits, then fills the gap
    txs = list(db.query("SELECT kind, nonce, state FROM chain_txs ORDER BY nonce, id"))
    assert [(tx["kind"], tx["state"]) for tx in txs] == [
        ("anchor", "dropped"),
        ("nonce_filler", "mined"),
        ("anchor", "mined"),
        ("anchor", "mined"),
    ]
    assert len(chain.ledger.events.Anchored().get_logs(from_block=0)) == 6
    assert outbox.status(db)["confirmed"] == 6


def test_independent_batches_are_pipelined_into_one_block(tmp_path, db, nodes):
    node = AnvilNode()
    nodes.append(node)
    node.start()
    chain = connect_url(node.url, Account.create(), "anvil")
    attach(chain, db)
    node.rpc("evm_setAutomine", [False])
    with transaction(db):
        for n in range(8):
            outbox.accrue(db, f"accrual:{n}", HOUSEHOLDS[n % 3], 100 + n)
        outbox.settle(db, "settlement:0", HOUSEHOLDS[0], 100)
    worker = Worker(chain, db, batch_size=2, pipeline=8, receipt_timeout=30)
    sending = threading.Thread(target=worker.send_window, args=(100,))
    sending.start()
    mined = int(node.rpc("eth_getTransactionCount", [chain.address, "latest"]), 16)
    for _ in range(600):  # until the four accrual batches wait in the pool (bounded polls)
        pooled = int(node.rpc("eth_getTransactionCount", [chain.address, "pending"]), 16)
        if pooled - mined == 4:
            break
        sending.join(0.05)
    node.mine(1)
    sending.join()
    blocks = {row["block_number"] for row in db.query("SELECT block_number FROM chain_txs")}
    assert db["chain_txs"].count == 4 and len(blocks) == 1  # four batches, one block
    assert outbox.status(db)["pending"] == 1  # the settlement waits for its accruals
    node.rpc("evm_setAutomine", [True])
    assert Worker(chain, db).run_until_idle() == {"confirmed": 9}
