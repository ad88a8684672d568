"""Resolving transactions already signed: receipts, re-broadcasts, drops, lost blocks, gaps."""

import json
from typing import Any

from eth_utils.exceptions import ValidationError
from web3.exceptions import Web3RPCError

from server.chain.ledger_items import DONE, KINDS
from server.chain.rows import MAX_REVERTED_ATTEMPTS, OutboxRows, hex_bytes, iso_at
from server.db import first, insert, transaction

ROLLBACK_DEPTH = 64  # blocks below the head checked again after a node lost blocks


class Recovery:
    """What became of each signed transaction, asked of the node after any crash."""

    def __init__(self, rows: OutboxRows, receipt_timeout: float):
        self.rows = rows
        self.chain, self.db, self.clock = rows.chain, rows.db, rows.clock
        self.receipt_timeout = receipt_timeout
        self._checked = False

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
        lost = [tx for tx in suspects if self.receipt(tx["tx_hash"]) is None]
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
                    self.rows.requeue(row, "rolled back by the node")
        return len(lost)

    def resolve_in_flight(self) -> int:
        """Resolve every signed-but-unresolved transaction, lowest nonce first."""
        self.check_rollback()
        txs = self._signed()
        for tx in txs:
            self.resolve(tx, self.receipt_timeout)
        if self.fill_nonce_gaps():
            for tx in self._signed():
                self.resolve(tx, self.receipt_timeout)
        return len(txs)

    def _signed(self) -> list[dict[str, Any]]:
        return list(
            self.db.query(
                "SELECT * FROM chain_txs WHERE state = 'signed' AND sender = ? ORDER BY nonce",
                [self.chain.address],
            )
        )

    def fill_nonce_gaps(self) -> int:
        """Send a zero-value self-transfer for each nonce missing below a waiting transaction.

        A transaction whose lower nonce is gone for good (refused by the node, or its rows
        re-signed) waits in the node's queue forever; the filler lets it through.
        """
        waiting = self._signed()
        if not waiting:
            return 0
        eth = self.chain.w3.eth
        next_nonce = eth.get_transaction_count(self.chain.address, "pending")
        mine = {tx["nonce"] for tx in waiting}
        gaps = [n for n in range(next_nonce, max(mine)) if n not in mine]
        fee = eth.gas_price
        for nonce in gaps:
            signed = self.chain.account.sign_transaction(
                {
                    "to": self.chain.address,
                    "value": 0,
                    "gas": 21_000,
                    "nonce": nonce,
                    "chainId": self.chain.chain_id,
                    "maxFeePerGas": fee * 2,
                    "maxPriorityFeePerGas": min(fee, 10**9),
                }
            )
            with transaction(self.db):
                insert(
                    self.db,
                    "chain_txs",
                    {
                        "tx_hash": hex_bytes(signed.hash),
                        "kind": "nonce_filler",
                        "sender": self.chain.address,
                        "nonce": nonce,
                        "raw_tx": hex_bytes(signed.raw_transaction),
                        "signed_at": iso_at(self.clock()),
                    },
                )
            eth.send_raw_transaction(signed.raw_transaction)
        return len(gaps)

    def resolve(self, tx: dict[str, Any], timeout: float) -> None:
        """Find out what became of `tx`: mined, still waiting, or unknown to the node."""
        eth = self.chain.w3.eth
        receipt = self.receipt(tx["tx_hash"])
        if receipt is None and not self._known(tx["tx_hash"]):
            if eth.get_transaction_count(self.chain.address, "latest") > tx["nonce"]:
                self._dropped(tx)  # its nonce was used by another transaction
                return
            if not self.broadcast(tx):
                return  # it waits for its lower nonces (filled by fill_nonce_gaps)
        if receipt is None and timeout > 0:
            receipt = self._wait_receipt(tx["tx_hash"], timeout)
        if receipt is not None:
            self.mined(tx, receipt)

    def broadcast(self, tx: dict[str, Any]) -> bool:
        """Hand a recorded transaction to the node (a node that already has it is fine);
        False when the node cannot take it yet because lower nonces are missing (lost blocks
        took them: anvil queues such a transaction, the in-process py-evm refuses it)."""
        try:
            self.chain.w3.eth.send_raw_transaction(tx["raw_tx"])
        except Web3RPCError as error:
            self._refused_by_node(tx, error)
        except ValidationError:
            pending = self.chain.w3.eth.get_transaction_count(self.chain.address, "pending")
            if pending >= tx["nonce"]:
                raise
            return False
        return True

    def _refused_by_node(self, tx: dict[str, Any], error: Web3RPCError) -> None:
        """The node rejected the transaction itself (fees, funds, nonce): re-sign it later."""
        if "known" in str(error).lower():
            return
        self._dropped(tx, f"refused by the node: {error}"[:300])
        raise error

    def receipt(self, tx_hash: str):
        """The transaction's receipt, or None while it is not mined."""
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

    def mined(self, tx: dict[str, Any], receipt) -> None:
        """Record a mined transaction: its rows confirmed, or settled after a revert."""
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
            rows = self.rows.rows_of(tx["id"])
            if ok:
                self.rows.confirm(rows, receipt["blockNumber"])
        if not ok:
            self._after_revert(rows)

    def _after_revert(self, rows: list[dict[str, Any]]) -> None:
        """Rows of a transaction that reverted when mined: settle by state, else retry or fail."""
        for row in rows:
            if self.rows.settle_by_state(row):
                continue
            if row["attempts"] >= MAX_REVERTED_ATTEMPTS:
                self.rows.fail(row, "reverted when mined, attempts exhausted")
            else:
                self.rows.requeue(row, "reverted when mined")

    def _dropped(self, tx: dict[str, Any], reason: str = "transaction dropped by the node"):
        with transaction(self.db):
            self.db.execute(
                "UPDATE chain_txs SET state = 'dropped', error = ? WHERE id = ?", [reason, tx["id"]]
            )
        for row in self.rows.rows_of(tx["id"]):
            if not self.rows.settle_by_state(row):
                self.rows.requeue(row, reason)
