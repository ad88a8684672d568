"""Outbox row transitions: confirm, fail, re-queue, back off (`OutboxRows`, one object the
worker and its recovery share).

Also what a revert looks like (web3's ContractLogicError or eth-tester's TransactionFailed)
and the timestamp format rows use.
"""

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlite_utils import Database

from server.chain.ledger_items import CONFLICT, DONE, KINDS
from server.chain.node import Chain
from server.clock import iso
from server.db import first, transaction

RETRY_BASE_S = 2.0
MAX_REVERTED_ATTEMPTS = 5


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


def hex_bytes(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def iso_at(seconds: float) -> str:
    """Seconds since the epoch as the stored ISO-8601 UTC text."""
    return iso(datetime.fromtimestamp(seconds, UTC))


class OutboxRows:
    """The outbox rows of one database as the chain settles them: `clock` gives seconds
    since the epoch, `rng` the jitter of back-offs."""

    def __init__(
        self,
        chain: Chain,
        db: Database,
        clock: Callable[[], float],
        rng: random.Random,
        retry_max_s: float,
    ):
        self.chain, self.db = chain, db
        self.clock, self.rng, self.retry_max_s = clock, rng, retry_max_s

    def settle_by_state(self, row: dict[str, Any], reason: str | None = None) -> bool:
        """Confirm a row the chain already holds, fail one it holds differently; else False."""
        state = KINDS[row["kind"]].state(self.chain.ledger, row["payload"])
        if state == DONE:
            self.confirm([row], None, note="already on chain with the same data")
            return True
        if state == CONFLICT:
            self.fail(row, f"the chain holds different data for {row['chain_key']}")
            return True
        return False

    def rows_of(self, tx_id: int) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT * FROM chain_outbox WHERE tx_id = ? AND state = 'submitted' ORDER BY id",
            [tx_id],
        )
        return [dict(row, payload=json.loads(row["payload"])) for row in rows]

    def confirm(self, rows: list[dict[str, Any]], block: int | None, note: str | None = None):
        now_ms = self.now_ms()
        with transaction(self.db):
            for row in rows:
                started = row["submitted_ms"] or row["created_ms"]
                self.db.execute(
                    "UPDATE chain_outbox SET state = 'confirmed', block_number = ?, "
                    "confirmed_at = ?, confirm_ms = ?, note = ?, last_error = NULL, "
                    "next_attempt_at = NULL WHERE id = ?",
                    [block, iso_at(now_ms / 1000), max(0, now_ms - started), note, row["id"]],
                )

    def fail(self, row: dict[str, Any], reason: str) -> None:
        with transaction(self.db):
            self.db.execute(
                "UPDATE chain_outbox SET state = 'failed', last_error = ?, "
                "next_attempt_at = NULL WHERE id = ?",
                [reason, row["id"]],
            )

    def requeue(self, row: dict[str, Any], reason: str) -> None:
        with transaction(self.db):
            self.db.execute(
                "UPDATE chain_outbox SET state = 'pending', tx_id = NULL, tx_hash = NULL, "
                "block_number = NULL, confirmed_at = NULL, confirm_ms = NULL, note = NULL, "
                "last_error = ? WHERE id = ?",
                [reason, row["id"]],
            )

    def back_off(self, error: BaseException) -> None:
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

    def now_ms(self) -> int:
        """The clock in milliseconds."""
        return int(self.clock() * 1000)

    def tx(self, tx_id: int) -> dict[str, Any]:
        return first(self.db, "SELECT * FROM chain_txs WHERE id = ?", [tx_id])
