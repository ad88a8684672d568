"""`sipang backup` / `sipang restore`, drilled: a running server under write load is backed
up, restored into a new folder and served; it keeps its ledger (never a second one) and
reconciles clean. A backup missing a key, or a file changed, is refused and named; a
server whose recorded ledger is not on its node, or whose keys are gone, refuses to start."""

import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from server import create_app
from server.backup import BackupError
from server.db import get_db
from server.payouts import settlement
from server.registry import orders
from tests import registry_world as rw
from tests.conftest import seed
from tests.server_process import ServerProcess

SIPANG = Path(sys.executable).with_name("sipang")


def sipang(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - our own program
        [str(SIPANG), *args], capture_output=True, text=True, timeout=600
    )


def query(instance: Path, sql: str, params: list | None = None) -> list[tuple]:
    db = sqlite3.connect(instance / "sipang.db", timeout=30)
    try:
        return db.execute(sql, params or []).fetchall()
    finally:
        db.close()


def wait_until_confirmed(instance: Path) -> None:
    """Until the server's chain worker has confirmed every outbox row (bounded)."""
    for _ in range(900):
        waiting = query(instance, "SELECT count(*) FROM chain_outbox WHERE state != 'confirmed'")
        if waiting[0][0] == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"outbox rows still waiting: {waiting}")


def build_world(instance: Path):
    """Households, an issuance, a paid sale, a paid T+1 transfer: rows for every ledger kind."""
    app = create_app({"INSTANCE_PATH": str(instance)})
    with app.app_context():
        db = get_db()
        world = seed(db)
        bundle, _, _ = rw.stocked_bundle(
            db, world.user_ids["verifier"], households_count=2, trees_per_household=4
        )
        made = rw.order(db, bundle["id"], 2)
        orders.confirm_payment(db, made, "bank", "ICBC-REC-1", "user:3")
        settlement.create_batch(db, "2026-01-02", 100, "user:3")
        for n, row in enumerate(db.query("SELECT id FROM settlements ORDER BY id")):
            settlement.record_transfer(db, row["id"], f"ICBC-T{n}-REC", "user:3")
    return world


class WriteLoad(threading.Thread):
    """Households created through the API, one after another, until stopped."""

    def __init__(self, url: str, token: str, village: str):
        super().__init__(daemon=True)
        self.url, self.token, self.village = url, token, village
        self.done: list[tuple[float, str]] = []  # (when the answer arrived, code)
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            body = json.dumps({"head_name": f"负载户{n}"}).encode()
            request = urllib.request.Request(  # noqa: S310 - loopback
                f"{self.url}/api/v1/villages/{self.village}/households",
                body,
                {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
            )
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                code = json.loads(response.read())["household"]["code"]
            self.done.append((time.monotonic(), code))


@pytest.fixture(scope="module")
def drill(tmp_path_factory):
    """A live server backed up under write load; returns the folders and what was written."""
    root = tmp_path_factory.mktemp("drill")
    live, out = root / "live", root / "backup"
    world = build_world(live)
    server = ServerProcess(live).start()
    try:
        wait_until_confirmed(live)
        load = WriteLoad(server.url, world.tokens["admin"], world.village_a)
        load.start()
        while len(load.done) < 5:  # the load is running
            time.sleep(0.05)
        started = time.monotonic()
        made = sipang("backup", str(out), "--instance", str(live))
        written = len(load.done)
        while len(load.done) < written + 3:
            time.sleep(0.05)  # a few more writes after the backup
        load.stopping.set()
        load.join(timeout=60)
    finally:
        server.stop()
    assert made.returncode == 0, made.stderr
    before = [code for when, code in load.done if when < started]
    return {"root": root, "live": live, "out": out, "before": before, "world": world}


def test_the_backup_has_a_manifest_every_key_and_private_modes(drill):
    out = drill["out"]
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("secret_key", "pii.key", "code.key", "audit.key", "chain.key", "vapid_private.pem"):
        assert key in manifest["keys"], key
    assert manifest["chain_state"] == "dumped from the running node"
    assert [d["chain_id"] for d in manifest["deployments"]] == [31337]
    assert "sipang.db-wal" not in manifest["files"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "pii.key").stat().st_mode) == 0o600


def test_restored_copy_serves_the_same_ledger_and_reconciles_clean(drill):
    restored = drill["root"] / "restored"
    answer = sipang("restore", str(drill["out"]), "--instance", str(restored))
    assert answer.returncode == 0, answer.stderr
    assert stat.S_IMODE(restored.stat().st_mode) == 0o700

    # every household acknowledged before the backup began is in the copy (WAL included)
    codes = {row[0] for row in query(restored, "SELECT code FROM households")}
    assert drill["before"] and set(drill["before"]) <= codes

    server = ServerProcess(restored).start()
    try:
        wait_until_confirmed(restored)
        checked = sipang("reconcile", "--instance", str(restored))  # beside the running serve
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert ": 0 differences." in checked.stdout
        server.process.send_signal(signal.SIGTERM)  # a clean stop, as systemd asks for one
        assert server.process.wait(timeout=60) == 0
        assert not (restored / "chain" / "node.json").exists()
    finally:
        server.stop()
    live_ledgers = query(drill["live"], "SELECT chain_id, address FROM chain_deployments")
    assert query(restored, "SELECT chain_id, address FROM chain_deployments") == live_ledgers


@pytest.mark.parametrize("key", ["pii.key", "chain.key", "audit.key"])
def test_a_restore_with_a_missing_key_refuses_and_names_it(drill, tmp_path, key):
    broken = tmp_path / "backup"
    shutil.copytree(drill["out"], broken)
    (broken / key).unlink()

    answer = sipang("restore", str(broken), "--instance", str(tmp_path / "new"))

    assert answer.returncode != 0
    assert key in answer.stderr and "Refusing to restore" in answer.stderr
    assert not (tmp_path / "new").exists()


def test_a_changed_file_in_the_backup_is_refused(drill, tmp_path):
    broken = tmp_path / "backup"
    shutil.copytree(drill["out"], broken)
    os.chmod(broken / "sipang.db", 0o600)
    with (broken / "sipang.db").open("r+b") as handle:
        handle.seek(4096)
        handle.write(b"\x00" * 16)

    answer = sipang("restore", str(broken), "--instance", str(tmp_path / "new"))

    assert answer.returncode != 0
    assert "sipang.db changed since the backup" in answer.stderr


def test_a_server_whose_ledger_is_not_on_its_node_refuses_to_start(drill, tmp_path):
    restored = tmp_path / "restored"
    assert sipang("restore", str(drill["out"]), "--instance", str(restored)).returncode == 0
    (restored / "chain" / "anvil-state.json").unlink()  # the node's state left behind

    answer = sipang("serve", "--instance", str(restored), "--port", "1")

    assert answer.returncode != 0
    assert "Refusing to start" in answer.stderr and "is not on this node" in answer.stderr
    # and no second ledger was deployed and recorded
    assert len(query(restored, "SELECT * FROM chain_deployments")) == 1


def test_a_server_with_data_but_no_pii_key_refuses_to_start(drill, tmp_path):
    restored = tmp_path / "restored"
    assert sipang("restore", str(drill["out"]), "--instance", str(restored)).returncode == 0
    (restored / "pii.key").unlink()

    with pytest.raises(BackupError, match="pii.key is missing"):
        create_app({"INSTANCE_PATH": str(restored)})
    assert not (restored / "pii.key").exists()  # no new key was made


def test_a_backup_into_a_folder_that_is_not_empty_is_refused(drill, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    answer = sipang("backup", str(tmp_path / "full"), "--instance", str(drill["live"]))
    assert answer.returncode != 0 and "not empty" in answer.stderr


def test_the_instance_folder_and_database_are_private(tmp_path):
    folder = tmp_path / "instance"
    folder.mkdir(mode=0o755)
    create_app({"INSTANCE_PATH": str(folder)})
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "sipang.db").stat().st_mode) == 0o600
