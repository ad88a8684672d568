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
from web3.exceptions import Web3Exception, Web3RPCError

from server.chain.connection import Chain
from server.chain.ledger import CONFLICT, DONE, KINDS, ORDERED_WITH
from server.clock import iso
from server.db import first, insert, transaction

RETRY_BASE_S = 2.0
MAX_REVERTED_ATTEMPTS = 5
ROLLBACK_DEPTH = 64  # blocks below the head checked again after a node lost blocks


def revert_reason(error: BaseException) -> str | None:
    """The revert message when `error` is a contract revert (web3 or eth-tester), else None."""
    from web3.exceptions import ContractLogicError

    if isinstance(error, ContractLogicError):
        text = error.message or str(error)
    elif type(error).__name__ == "TransactionFailed":  # eth-tester's in-process revert
        text = error.args[0] if error.args else str(error)
        if isinstance(text, bytes):
            text = _error_string(text)
    else:
        return None
    text = text.removeprefix("execution reverted: ").removeprefix("execution reverted")
    return text or "reverted"


def _error_string(data: bytes) -> str:
    """The message of ABI-encoded `Error(string)` revert data."""
    if data[:4] != bytes.fromhex("08c379a0"):
        return "reverted"
    from eth_abi import decode

    return decode(["string"], data[4:])[0]


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


class Worker:
    """Sends the outbox of `db` to `chain.ledger`; `clock` gives seconds since the epoch."""

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
    ):
        if chain.ledger is None:
            raise ValueError("attach the ledger contract first (server.chain.deploy.attach)")
        self.chain, self.db = chain, db
        self.batch_size = batch_size
        self.receipt_timeout = receipt_timeout
        self.retry_max_s = retry_max_s
        self.clock = clock
        self.rng = rng or random.Random()
        self._checked = False

    # -- one round -------------------------------------------------------------------

    def run_once(self, max_batches: int = 1000) -> dict[str, int]:
        """Resolve in-flight transactions, then send due batches; returns counts."""
        done = {"batches": 0, "resolved": 0}
        try:
            done["resolved"] = self.resolve_in_flight()
            for _ in range(max_batches):
                if self._in_flight():
                    break
                rows = self.next_batch()
                if not rows:
                    break
                self.send(rows)
                done["batches"] += 1
        except (OSError, Web3Exception) as error:  # node down, timeouts: back off, retry later
            if revert_reason(error) is not None:
                raise
            self._back_off(error)
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

    # -- choosing a batch ------------------------------------------------------------

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

    # -- sending ---------------------------------------------------------------------

    def send(self, rows: list[dict[str, Any]]) -> None:
        """Send `rows` (one kind) as one batch call and wait for its receipt."""
        tx = self.sign_batch(rows)
        if tx is not None:
            self.broadcast(tx)
            self.resolve(tx, self.receipt_timeout)

    def _refused_by_node(self, tx: dict[str, Any], error: Web3RPCError) -> None:
        """The node rejected the transaction itself (fees, funds, nonce): re-sign it later."""
        if "known" in str(error).lower():
            return
        self._dropped(tx, f"refused by the node: {error}"[:300])
        raise error

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
        now_ms = self._now_ms()
        record = {
            "tx_hash": _hex(signed.hash),
            "kind": rows[0]["kind"],
            "sender": self.chain.address,
            "nonce": tx["nonce"],
            "raw_tx": _hex(signed.raw_transaction),
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
                [tx_id, _hex(signed.hash), now_ms, *(row["id"] for row in rows)],
            )
        return self._tx(tx_id)

    def broadcast(self, tx: dict[str, Any]) -> None:
        """Hand a recorded transaction to the node (a node that already has it is fine)."""
        try:
            self.chain.w3.eth.send_raw_transaction(tx["raw_tx"])
        except Web3RPCError as error:
            self._refused_by_node(tx, error)

    def _refused(self, rows: list[dict[str, Any]], reason: str) -> None:
        """A batch the contract refuses: settle rows already done, try the rest one by one."""
        remaining = [row for row in rows if not self._settle_by_state(row, reason)]
        if len(remaining) == 1 and len(rows) == 1:
            self._fail(remaining[0], reason)
            return
        for row in remaining:
            self.send([row])

    def _settle_by_state(self, row: dict[str, Any], reason: str | None = None) -> bool:
        """Confirm a row the chain already holds, fail one it holds differently; else False."""
        state = KINDS[row["kind"]].state(self.chain.ledger, row["payload"])
        if state == DONE:
            self._confirm([row], None, note="already on chain with the same data")
            return True
        if state == CONFLICT:
            self._fail(row, f"the chain holds different data for {row['chain_key']}")
            return True
        return False

    # -- resolving transactions ------------------------------------------------------

    def check_rollback(self) -> int:
        """Re-queue rows whose mined transaction the node no longer has.

        A node restarted from an older state file (killed between two dumps) forgets its
        latest blocks. Checked on the worker's first round and whenever the node's head is
        below the last block recorded here; returns how many transactions were rolled back.
        """
        head = self.chain.w3.eth.block_number
        last = first(
            self.db,
            "SELECT max(block_number) AS n FROM chain_txs WHERE state IN ('mined', 'reverted') "
            "AND sender = ?",
            [self.chain.address],
        )["n"]
        if last is None or (self._checked and head >= last):
            return 0
        self._checked = True
        suspects = self.db.query(
            "SELECT * FROM chain_txs WHERE state IN ('mined', 'reverted') AND sender = ? "
            "AND block_number > ? ORDER BY nonce",
            [self.chain.address, min(head, last) - ROLLBACK_DEPTH],
        )
        lost = [tx for tx in suspects if self._receipt(tx["tx_hash"]) is None]
        for tx in lost:
            with transaction(self.db):
                self.db.execute(
                    "UPDATE chain_txs SET state = 'dropped', error = 'rolled back' WHERE id = ?",
                    [tx["id"]],
                )
            rows = self.db.query(
                "SELECT * FROM chain_outbox WHERE tx_id = ? AND state IN ('confirmed', 'failed')",
                [tx["id"]],
            )
            for row in [dict(row, payload=json.loads(row["payload"])) for row in rows]:
                if KINDS[row["kind"]].state(self.chain.ledger, row["payload"]) != DONE:
                    self._requeue(row, "rolled back by the node")
        return len(lost)

    def resolve_in_flight(self) -> int:
        """Resolve every signed-but-unresolved transaction, lowest nonce first."""
        self.check_rollback()
        txs = list(
            self.db.query(
                "SELECT * FROM chain_txs WHERE state = 'signed' AND sender = ? ORDER BY nonce",
                [self.chain.address],
            )
        )
        for tx in txs:
            self.resolve(tx, self.receipt_timeout)
        return len(txs)

    def resolve(self, tx: dict[str, Any], timeout: float) -> None:
        """Find out what became of `tx`: mined, still waiting, or unknown to the node."""
        eth = self.chain.w3.eth
        receipt = self._receipt(tx["tx_hash"])
        if receipt is None and not self._known(tx["tx_hash"]):
            if eth.get_transaction_count(self.chain.address, "latest") > tx["nonce"]:
                self._dropped(tx)  # its nonce was used by another transaction
                return
            self.broadcast(tx)
        if receipt is None and timeout > 0:
            receipt = self._wait_receipt(tx["tx_hash"], timeout)
        if receipt is not None:
            self._mined(tx, receipt)

    def _receipt(self, tx_hash: str):
        from web3.exceptions import TransactionNotFound

        try:
            return self.chain.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None

    def _wait_receipt(self, tx_hash: str, timeout: float):
        from web3.exceptions import TimeExhausted

        try:
            return self.chain.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=timeout, poll_latency=0.05
            )
        except TimeExhausted:
            return None

    def _known(self, tx_hash: str) -> bool:
        from web3.exceptions import TransactionNotFound

        try:
            return self.chain.w3.eth.get_transaction(tx_hash) is not None
        except TransactionNotFound:
            return False

    def _mined(self, tx: dict[str, Any], receipt) -> None:
        ok = receipt["status"] == 1
        with transaction(self.db):
            self.db.execute(
                "UPDATE chain_txs SET state = ?, block_number = ?, gas_used = ?, mined_at = ? "
                "WHERE id = ?",
                [
                    "mined" if ok else "reverted",
                    receipt["blockNumber"],
                    receipt["gasUsed"],
                    iso_at(self.clock()),
                    tx["id"],
                ],
            )
            rows = self._rows_of(tx["id"])
            if ok:
                self._confirm(rows, receipt["blockNumber"])
        if not ok:
            self._after_revert(rows)

    def _after_revert(self, rows: list[dict[str, Any]]) -> None:
        """Rows of a transaction that reverted when mined: settle by state, else retry or fail."""
        for row in rows:
            if self._settle_by_state(row):
                continue
            if row["attempts"] >= MAX_REVERTED_ATTEMPTS:
                self._fail(row, "reverted when mined, attempts exhausted")
            else:
                self._requeue(row, "reverted when mined")

    def _dropped(self, tx: dict[str, Any], reason: str = "transaction dropped by the node"):
        with transaction(self.db):
            self.db.execute(
                "UPDATE chain_txs SET state = 'dropped', error = ? WHERE id = ?", [reason, tx["id"]]
            )
        for row in self._rows_of(tx["id"]):
            if not self._settle_by_state(row):
                self._requeue(row, reason)

    # -- row updates -----------------------------------------------------------------

    def _rows_of(self, tx_id: int) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT * FROM chain_outbox WHERE tx_id = ? AND state = 'submitted' ORDER BY id",
            [tx_id],
        )
        return [dict(row, payload=json.loads(row["payload"])) for row in rows]

    def _confirm(self, rows: list[dict[str, Any]], block: int | None, note: str | None = None):
        now_ms = self._now_ms()
        with transaction(self.db):
            for row in rows:
                started = row["submitted_ms"] or row["created_ms"]
                self.db.execute(
                    "UPDATE chain_outbox SET state = 'confirmed', block_number = ?, "
                    "confirmed_at = ?, confirm_ms = ?, note = ?, last_error = NULL, "
                    "next_attempt_at = NULL WHERE id = ?",
                    [block, iso_at(now_ms / 1000), max(0, now_ms - started), note, row["id"]],
                )

    def _fail(self, row: dict[str, Any], reason: str) -> None:
        with transaction(self.db):
            self.db.execute(
                "UPDATE chain_outbox SET state = 'failed', last_error = ?, "
                "next_attempt_at = NULL WHERE id = ?",
                [reason, row["id"]],
            )

    def _requeue(self, row: dict[str, Any], reason: str) -> None:
        with transaction(self.db):
            self.db.execute(
                "UPDATE chain_outbox SET state = 'pending', tx_id = NULL, tx_hash = NULL, "
                "block_number = NULL, confirmed_at = NULL, confirm_ms = NULL, note = NULL, "
                "last_error = ? WHERE id = ?",
                [reason, row["id"]],
            )

    def _back_off(self, error: BaseException) -> None:
        """Node or network trouble: every waiting row retries after a full-jitter delay."""
        oldest = first(
            self.db,
            "SELECT attempts FROM chain_outbox WHERE state = 'pending' ORDER BY id LIMIT 1",
        )
        attempts = oldest["attempts"] if oldest else 0
        delay = self.rng.uniform(0, min(self.retry_max_s, RETRY_BASE_S * 2**attempts))
        with transaction(self.db):
            self.db.execute(
                "UPDATE chain_outbox SET attempts = attempts + 1, next_attempt_at = ?, "
                "last_error = ? WHERE state = 'pending'",
                [iso_at(self.clock() + delay), f"{type(error).__name__}: {error}"[:300]],
            )

    # -- nonces ----------------------------------------------------------------------

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

    def _tx(self, tx_id: int) -> dict[str, Any]:
        return first(self.db, "SELECT * FROM chain_txs WHERE id = ?", [tx_id])

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)


def iso_at(seconds: float) -> str:
    """Seconds since the epoch as the stored ISO-8601 UTC text."""
    from datetime import UTC, datetime

    return iso(datetime.fromtimestamp(seconds, UTC))
