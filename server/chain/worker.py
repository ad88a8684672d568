"""The chain worker: sends outbox rows as batched, locally signed transactions.

One round: resolve every transaction still in flight (receipt, still pending, or unknown to
the node: re-broadcast if its nonce is free, else dropped), then send batches one at a
time, each waiting for its receipt. A transaction is recorded with its raw bytes before it
is broadcast, so a crash anywhere leaves a hash the next round can ask the node about.
Before a row is sent again the contract's state is read: "already done with the same data"
counts as confirmed, different data as failed. Node and network errors back off with full
jitter; a revert fails the row with the contract's reason.
"""

import json
import random
import time
from collections.abc import Callable
from typing import Any

from sqlite_utils import Database
from web3.exceptions import Web3Exception

from server.chain.ledger_items import KINDS, ORDERED_WITH
from server.chain.node import Chain
from server.chain.recovery import Recovery
from server.chain.rows import OutboxRows, hex_bytes, iso_at, revert_reason
from server.db import first, insert, transaction

__all__ = ["Worker", "iso_at", "revert_reason"]

# Kinds whose batches never read what another batch of the same kind wrote, so several may
# be in flight at once (a settlement reads its accrual; an issuance continues its lot).
PIPELINED = frozenset({"anchor", "split_policy", "accrue"})


class Worker:
    """Sends the outbox of `db` to `chain.ledger`; `clock` gives seconds since the epoch.

    Made of the outbox rows' transitions (`rows`, server/chain/rows.py) and the recovery of
    transactions already signed (`recovery`, server/chain/recovery.py)."""

    def __init__(
        self,
        chain: Chain,
        db: Database,
        *,
        batch_size: int = 64,
        receipt_timeout: float = 30.0,
        retry_max_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        pipeline: int = 8,
    ):
        if chain.ledger is None:
            raise ValueError("attach the ledger contract first (server.chain.deploy.attach)")
        self.chain, self.db = chain, db
        self.batch_size = batch_size
        self.receipt_timeout = receipt_timeout
        self.retry_max_s = retry_max_s
        self.clock = clock
        self.rng = rng or random.Random()
        self.pipeline = max(1, pipeline)
        self.rows = OutboxRows(chain, db, self.clock, self.rng, retry_max_s)
        self.recovery = Recovery(self.rows, receipt_timeout)

    def run_once(self, max_batches: int = 1000) -> dict[str, int]:
        """Resolve in-flight transactions, then send due batches; returns counts."""
        done = {"batches": 0, "resolved": 0}
        try:
            done["resolved"] = self.recovery.resolve_in_flight()
            while done["batches"] < max_batches and not self._in_flight():
                sent = self.send_window(max_batches - done["batches"])
                if not sent:
                    break
                done["batches"] += sent
        except (OSError, Web3Exception) as error:  # node down, timeouts: back off, retry later
            if revert_reason(error) is not None:
                raise
            self.rows.back_off(error)
            done["error"] = 1
        return done

    def run_until_idle(self, rounds: int = 50) -> dict[str, int]:
        """Run rounds until nothing is pending or in flight (or `rounds` run out)."""
        for _ in range(rounds):
            self.run_once()
            waiting = first(
                self.db,
                "SELECT count(*) AS n FROM chain_outbox WHERE state IN ('pending', 'submitted')",
            )["n"]
            if not waiting:
                break
        return self.counts()

    def counts(self) -> dict[str, int]:
        rows = self.db.query("SELECT state, count(*) AS n FROM chain_outbox GROUP BY state")
        return {row["state"]: row["n"] for row in rows}

    def next_batch(self) -> list[dict[str, Any]]:
        """The oldest pending row's kind, up to the first row of a kind it must not overtake."""
        oldest = first(
            self.db,
            "SELECT id, kind, next_attempt_at FROM chain_outbox WHERE state = 'pending' "
            "ORDER BY id LIMIT 1",
        )
        if oldest is None:
            return []
        if oldest["next_attempt_at"] and oldest["next_attempt_at"] > iso_at(self.clock()):
            return []
        related = sorted(ORDERED_WITH[oldest["kind"]])
        bound = None
        if related:
            marks = ", ".join("?" for _ in related)
            bound = first(
                self.db,
                f"SELECT min(id) AS id FROM chain_outbox WHERE state = 'pending' "  # noqa: S608
                f"AND kind IN ({marks}) AND id > ?",
                [*related, oldest["id"]],
            )["id"]
        rows = self.db.query(
            "SELECT * FROM chain_outbox WHERE state = 'pending' AND kind = ? AND id >= ? "
            "AND id < ? ORDER BY id LIMIT ?",
            [oldest["kind"], oldest["id"], bound or 2**62, self.batch_size],
        )
        return [dict(row, payload=json.loads(row["payload"])) for row in rows]

    def send_window(self, limit: int) -> int:
        """Send up to `pipeline` batches of one pipelined kind back to back (else one batch),
        then wait for their receipts; returns how many batches were taken."""
        window: list[dict[str, Any]] = []
        taken = 0
        while taken < limit and len(window) < self.pipeline:
            rows = self.next_batch()
            if not rows:
                break
            kind = rows[0]["kind"]
            if window and (kind != window[0]["kind"] or kind not in PIPELINED):
                break
            taken += 1
            tx = self.sign_batch(rows)
            if tx is None:  # refused: its rows were settled one by one
                break
            self.broadcast(tx)
            receipt = self.recovery.receipt(tx["tx_hash"])
            if receipt is not None:  # mined at once (automine): nothing to overlap
                self.recovery.mined(tx, receipt)
            else:
                window.append(tx)
            if kind not in PIPELINED:
                break
        for tx in window:
            self.resolve(tx, self.receipt_timeout)
        return taken

    def broadcast(self, tx: dict[str, Any]) -> None:
        """Hand a recorded transaction to the node (server/chain/recovery.py)."""
        self.recovery.broadcast(tx)

    def resolve(self, tx: dict[str, Any], timeout: float) -> None:
        """Find out what became of `tx` (server/chain/recovery.py)."""
        self.recovery.resolve(tx, timeout)

    def send(self, rows: list[dict[str, Any]]) -> None:
        """Send `rows` (one kind) as one batch call and wait for its receipt."""
        tx = self.sign_batch(rows)
        if tx is not None:
            self.broadcast(tx)
            self.resolve(tx, self.receipt_timeout)

    def sign_batch(self, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
        """Sign one batch call and record it (rows become `submitted`) before any broadcast.

        Returns the recorded transaction, or None when the contract refused the batch (its
        rows are then settled one by one).
        """
        kind = KINDS[rows[0]["kind"]]
        rows = sorted(rows, key=lambda row: (kind.sort(row["payload"]), row["id"]))
        call = getattr(self.chain.ledger.functions, kind.function)(
            [kind.item(row["payload"]) for row in rows]
        )
        try:
            gas = call.estimate_gas({"from": self.chain.address})
        except Exception as error:
            reason = revert_reason(error)
            if reason is None:
                raise
            self._refused(rows, reason)
            return None
        tx = call.build_transaction(
            {
                "from": self.chain.address,
                "nonce": self._next_nonce(),
                "gas": gas + gas // 5 + 21_000,
                "chainId": self.chain.chain_id,
            }
        )
        signed = self.chain.account.sign_transaction(tx)
        now_ms = self.rows.now_ms()
        record = {
            "tx_hash": hex_bytes(signed.hash),
            "kind": rows[0]["kind"],
            "sender": self.chain.address,
            "nonce": tx["nonce"],
            "raw_tx": hex_bytes(signed.raw_transaction),
            "signed_at": iso_at(now_ms / 1000),
        }
        with transaction(self.db):
            again = first(
                self.db, "SELECT id FROM chain_txs WHERE tx_hash = ?", [record["tx_hash"]]
            )
            if again is None:
                tx_id = insert(self.db, "chain_txs", record)
            else:  # the very same transaction again (after the node lost it in a rollback)
                tx_id = again["id"]
                self.db.execute(
                    "UPDATE chain_txs SET state = 'signed', signed_at = ?, block_number = NULL, "
                    "gas_used = NULL, mined_at = NULL, error = NULL WHERE id = ?",
                    [record["signed_at"], tx_id],
                )
            self.db.execute(
                f"UPDATE chain_outbox SET state = 'submitted', tx_id = ?, tx_hash = ?, "  # noqa: S608
                f"attempts = attempts + 1, submitted_ms = coalesce(submitted_ms, ?), "
                f"last_error = NULL WHERE id IN ({', '.join('?' for _ in rows)})",
                [tx_id, hex_bytes(signed.hash), now_ms, *(row["id"] for row in rows)],
            )
        return self.rows.tx(tx_id)

    def _refused(self, rows: list[dict[str, Any]], reason: str) -> None:
        """A batch the contract refuses: settle rows already done, try the rest one by one."""
        remaining = [row for row in rows if not self.rows.settle_by_state(row, reason)]
        if len(remaining) == 1 and len(rows) == 1:
            self.rows.fail(remaining[0], reason)
            return
        for row in remaining:
            self.send([row])

    def _in_flight(self) -> bool:
        return (
            first(
                self.db,
                "SELECT 1 AS x FROM chain_txs WHERE state = 'signed' AND sender = ? LIMIT 1",
                [self.chain.address],
            )
            is not None
        )

    def _next_nonce(self) -> int:
        """The node's pending nonce, never below one already signed here."""
        pending = self.chain.w3.eth.get_transaction_count(self.chain.address, "pending")
        mine = first(
            self.db,
            "SELECT max(nonce) AS n FROM chain_txs WHERE sender = ? AND state IN ('signed')",
            [self.chain.address],
        )["n"]
        return max(pending, -1 if mine is None else mine + 1)
