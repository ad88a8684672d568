"""What reconcile compares and what it finds: a `Check` (the database's value beside the
contract call that reads the chain's) and a `Difference`."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.chain.ledger_items import hex32


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Check:
    """One ledger item to compare: the database's value and the contract call to read."""

    table: str
    row: Any
    item: str
    key: str | list[str]  # its chain outbox key(s), to tell waiting rows apart
    database: Any
    call: Any  # a web3 ContractFunction, called later (in JSON-RPC batches)
    transform: Callable[[Any], Any] = _same


@dataclass(frozen=True)
class Difference:
    """One item where the database and the chain disagree."""

    table: str
    row: Any
    item: str
    database: Any
    chain: Any
    waiting: bool = False  # its outbox row is not confirmed yet

    def line(self) -> str:
        state = " (outbox row not confirmed yet)" if self.waiting else ""
        return (
            f"{self.table} row {self.row}: {self.item}{state}: "
            f"database {self.database!r}, chain {self.chain!r}"
        )


def as_hex(value: Any) -> Any:
    """A value from either side as it is printed: 32-byte values and bytes as hex."""
    if isinstance(value, bytes | bytearray):
        return hex32(bytes(value)) if len(value) == 32 else "0x" + bytes(value).hex()
    if isinstance(value, tuple | list):
        return tuple(as_hex(v) for v in value)
    return value
