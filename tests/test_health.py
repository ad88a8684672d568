"""`/healthz` reports the database and the chain node, against a real anvil."""

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from server import create_app
from tests.server_process import free_port

ANVIL = Path(__file__).resolve().parent.parent / "tools" / "node_modules" / ".bin" / "anvil"


@pytest.fixture
def anvil_url():
    """A real anvil node on loopback (installed by `make test` from npm)."""
    assert ANVIL.exists() or shutil.which("anvil"), "anvil is missing: run `make setup`"
    port = free_port()
    process = subprocess.Popen(
        [str(ANVIL), "--port", str(port), "--host", "127.0.0.1", "--chain-id", "31337"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_healthz_reports_database_and_no_chain(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    assert response.json["database"] == {
        "ok": True,
        "pending_migrations": [],
        "journal_mode": "wal",
    }
    assert response.json["chain"] == {"ok": True, "configured": False}


def test_healthz_reports_a_live_chain_node(instance, anvil_url):
    client = create_app({"INSTANCE_PATH": str(instance), "CHAIN_RPC": anvil_url}).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    chain = response.json["chain"]
    assert chain["configured"] is True
    assert chain["chain_id"] == 31337
    assert chain["block"] >= 0


def test_healthz_is_degraded_when_the_chain_node_is_down(instance):
    url = f"http://127.0.0.1:{free_port()}"
    client = create_app({"INSTANCE_PATH": str(instance), "CHAIN_RPC": url}).test_client()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["status"] == "degraded"
    assert response.json["chain"]["ok"] is False
