"""Running the ledger beside the app: the node (a local anvil unless CHAIN_RPC is set),
the ledger contract, and the outbox worker in a background thread."""

import contextlib
import ctypes
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from server.anchors import anchor_audit_head
from server.backup import forget_node, record_node
from server.chain.anvil import AnvilNode
from server.chain.deploy import LedgerMissing, attach
from server.chain.node import DEV_KEY_FILE, Chain, connect
from server.chain.worker import Worker
from server.db import connect as connect_db

log = logging.getLogger(__name__)
IDLE_POLL_SECONDS = 1.0
ANVIL_STATE_SECONDS = 2  # the local node dumps its state this often: a crash loses little


def anvil_state_path(instance: str | Path) -> Path:
    """Where the local anvil keeps its chain: `chain/anvil-state.json` in the instance folder."""
    return Path(instance) / "chain" / "anvil-state.json"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to send the child SIGTERM (so it dumps its state) when its parent dies."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ChainService:
    """The node, the contract and the worker for one instance; `start()` then `stop()`."""

    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.node: AnvilNode | None = None
        self.chain: Chain | None = None
        self.worker: Worker | None = None
        self.deployment: dict[str, Any] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def connect(self) -> Chain:
        """Start the local anvil (when no CHAIN_RPC), connect and attach the ledger."""
        url = self.config.get("CHAIN_RPC")
        engine = "rpc"
        db = connect_db(self.config["DATABASE"])
        try:
            self._check_signing_key(db)
            if not url:
                state = anvil_state_path(self.config["INSTANCE_PATH"])
                self.node = AnvilNode(
                    state, state_interval=ANVIL_STATE_SECONDS, preexec_fn=_die_with_parent
                )
                url, engine = self.node.start(), "anvil"
                record_node(Path(self.config["INSTANCE_PATH"]), url)
            self.chain = connect(self.config, engine, url)
            self.deployment = attach(self.chain, db, self.config.get("CHAIN_CONTRACT"))
        finally:
            db.close()
        return self.chain

    def _check_signing_key(self, db) -> None:
        """A recorded ledger signed by the instance's `chain.key` needs that file: a new key
        would hold no role on it."""
        if self.config.get("CHAIN_KEY") or self.config.get("CHAIN_KEYSTORE"):
            return
        if (Path(self.config["INSTANCE_PATH"]) / DEV_KEY_FILE).exists():
            return
        if db.execute("SELECT 1 FROM chain_deployments LIMIT 1").fetchone():
            raise LedgerMissing(
                f"{DEV_KEY_FILE} is missing from the instance folder, but the database records "
                "a ledger it signed; restore it from the backup (sipang restore)"
            )

    def make_worker(self) -> Worker:
        if self.chain is None:
            self.connect()
        db = connect_db(self.config["DATABASE"])
        self.worker = Worker(
            self.chain,
            db,
            batch_size=self.config["CHAIN_BATCH_SIZE"],
            receipt_timeout=self.config["CHAIN_RECEIPT_TIMEOUT"],
            retry_max_s=self.config["CHAIN_RETRY_MAX_SECONDS"],
        )
        return self.worker

    def start(self) -> None:
        """Connect and run the worker in a daemon thread until `stop()`."""
        worker = self.worker or self.make_worker()
        self._thread = threading.Thread(target=self._loop, args=(worker,), daemon=True)
        self._thread.start()

    def _loop(self, worker: Worker) -> None:
        interval = self.config.get("AUDIT_ANCHOR_SECONDS", 600)
        while not self._stopping.is_set():
            try:
                anchor_audit_head(worker.db, interval)  # no-op until the interval passed
                done = worker.run_once()
            except Exception:  # noqa: BLE001 - the worker must outlive any one bad round
                log.exception("chain worker round failed")
                done = {}
            if not done.get("batches"):
                self._stopping.wait(IDLE_POLL_SECONDS)

    def wait(self) -> None:
        """Block until `stop()` (or Ctrl-C)."""
        self._stopping.wait()

    def stop(self) -> None:
        """Stop the worker, then the local node (SIGTERM: it dumps its state file)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self.worker is not None:
            self.worker.db.close()
        if self.node is not None:
            self.node.stop(signal.SIGTERM)
            forget_node(Path(self.config["INSTANCE_PATH"]))
