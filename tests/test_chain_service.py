"""`sipang chain work` and `status`, and the chain service: a local anvil in the instance folder."""

import json
import signal
import time
import urllib.request

import pytest
from click.testing import CliRunner

from server import create_app
from server.chain import outbox
from server.chain.anvil import AnvilNode
from server.chain.node import write_keystore
from server.chain.service import ChainService, anvil_state_path
from server.cli import main
from server.db import connect, transaction
from tests.server_process import ServerProcess


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def queue_anchors(instance, count: int, prefix: str) -> None:
    app = create_app({"INSTANCE_PATH": str(instance)})
    db = connect(app.config["DATABASE"])
    with transaction(db):
        for n in range(count):
            outbox.anchor(db, "roster_version", f"{prefix}:{n}", bytes([n + 1]) * 32)
    db.close()


def test_chain_work_once_sends_the_outbox_to_a_local_anvil_kept_in_the_instance(instance):
    queue_anchors(instance, 3, "v1")
    result = invoke("chain", "work", "--once", "--instance", str(instance))
    assert result.exit_code == 0
    assert "(anvil)" in result.output
    assert result.output.strip().endswith("confirmed=3")
    assert anvil_state_path(instance).exists()  # dumped when the node stopped

    queue_anchors(instance, 2, "v2")  # the next run restarts the chain from that file
    result = invoke("chain", "work", "--once", "--instance", str(instance))
    assert result.output.strip().endswith("confirmed=5")
    status = json.loads(invoke("chain", "status", "--instance", str(instance)).output)
    assert (status["confirmed"], status["pending"], status["failed"]) == (5, 0, 0)
    assert status["deployment"]["chain_id"] == 31337
    db = connect(instance / "sipang.db")
    assert db["chain_deployments"].count == 1  # the same ledger both times


def test_the_service_worker_thread_sends_rows_written_while_it_runs(instance):
    app = create_app({"INSTANCE_PATH": str(instance)})
    service = ChainService(app.config)
    service.start()
    try:
        queue_anchors(instance, 4, "live")
        db = connect(app.config["DATABASE"])
        for _ in range(600):  # wait for the worker (a bound on polls, not a timing assertion)
            if outbox.status(db)["confirmed"] == 4:
                break
            service._stopping.wait(0.05)
        assert outbox.status(db)["confirmed"] == 4
        ledger = service.chain.ledger
        assert len(ledger.events.Anchored().get_logs(from_block=0)) == 4
    finally:
        service.stop()


def test_on_chain_rpc_the_key_comes_from_an_encrypted_keystore(instance, tmp_path):
    key = "0x" + "ab" * 32
    address = write_keystore(tmp_path / "key.json", key, "a long pass phrase", iterations=2**10)
    assert "ab" * 32 not in (tmp_path / "key.json").read_text()
    node = AnvilNode()
    node.start()
    try:
        node.rpc("anvil_setBalance", [address, hex(10**21)])
        settings = {
            "INSTANCE_PATH": str(instance),
            "CHAIN_RPC": node.url,
            "CHAIN_KEYSTORE": str(tmp_path / "key.json"),
            "CHAIN_KEYSTORE_PASSWORD": "a long pass phrase",
        }
        service = ChainService(create_app(settings).config)
        chain = service.connect()
        assert (service.node, chain.engine, chain.address) == (None, "rpc", address)
        assert service.deployment["deployer"] == address

        other = {
            "INSTANCE_PATH": str(tmp_path / "other"),
            "CHAIN_RPC": node.url,
            "CHAIN_KEY": key,
            "CHAIN_CONTRACT": service.deployment["address"],
        }
        second = ChainService(create_app(other).config)
        assert second.connect().ledger.address == service.deployment["address"]

        settings.pop("CHAIN_KEYSTORE_PASSWORD")
        with pytest.raises(ValueError, match="CHAIN_KEYSTORE_PASSWORD"):
            ChainService(create_app(settings).config).connect()
    finally:
        node.stop(signal.SIGTERM)


def test_serve_runs_the_ledger_on_a_local_anvil_that_stops_with_it(instance):
    queue_anchors(instance, 3, "served")
    with ServerProcess(instance) as server:
        with urllib.request.urlopen(f"{server.url}/healthz") as response:  # noqa: S310
            chain = json.load(response)["chain"]
        assert (chain["ok"], chain["configured"], chain["chain_id"]) == (True, True, 31337)
        db = connect(instance / "sipang.db")
        for _ in range(600):  # the worker thread sends them (bounded polls, no timing assertion)
            if outbox.status(db)["confirmed"] == 3:
                break
            time.sleep(0.05)
        assert outbox.status(db)["confirmed"] == 3
    # the server was killed (SIGKILL); its anvil got SIGTERM from Linux and saved its chain
    for _ in range(600):
        if anvil_state_path(instance).exists():
            break
        time.sleep(0.05)
    assert anvil_state_path(instance).exists()


def test_serve_without_the_chain_worker(instance, monkeypatch):
    monkeypatch.setenv("SIPANG_CHAIN_WORKER", "false")
    with ServerProcess(instance) as server:
        health = urllib.request.urlopen(f"{server.url}/healthz")  # noqa: S310
        assert json.load(health)["chain"] == {"ok": True, "configured": False}
        health.close()
    assert not anvil_state_path(instance).exists()
