"""What each outbox kind means on the ledger contract: its call, its items, its state check.

Payloads in the outbox are JSON with readable references (a lot's serial prefix, an
accrual's id); on chain each becomes a keccak hash, and amounts stay integers (fen, grams).
"""

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak

ZERO = b"\x00" * 32

# Anchor kinds as stored on chain (uint8); the names are what callers pass.
ANCHOR_KINDS: dict[str, int] = {
    "sync_batch": 1,
    "verification_report": 2,
    "roster_version": 3,
    "certificate": 4,
    "settlement_batch": 5,
    "issuance_measurements": 6,  # Merkle root of the measurement rows behind an issuance
    "order": 7,  # a paid order's amounts
    "settlement_bank": 8,  # keyed hashes of the bank details a batch pays
    "audit_head": 9,  # the audit log's newest entry hash
    "buffer_cancellation": 16,  # serials cancelled for carbon lost after crediting
}

DONE, NOT_DONE, CONFLICT = "done", "not_done", "conflict"


def key32(text: str) -> bytes:
    """A readable reference as the bytes32 the contract stores: keccak of its UTF-8."""
    return keccak(text.encode("utf-8"))


def bytes32(value: str | bytes) -> bytes:
    """A 32-byte value given as bytes or `0x`-hex."""
    raw = value if isinstance(value, bytes) else bytes.fromhex(value.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError("expected 32 bytes")
    return raw


def hex32(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def county_salt(code_key: str, county_code: str) -> bytes:
    """The county's household-hash salt, derived from the instance's CODE_KEY."""
    return hmac.new(
        bytes.fromhex(code_key), f"sipang chain salt {county_code}".encode(), hashlib.sha256
    ).digest()


def household_hash(salt: bytes, code: str) -> str:
    """keccak(county salt ‖ household key): how the ledger names a household. The key is the
    code without its check (`360423101201-0042`), which a replaced door plate keeps."""
    return hex32(keccak(salt + code.strip().upper()[:17].encode("ascii")))


@dataclass(frozen=True)
class Kind:
    """One outbox kind: the batch function, how a payload becomes an item, its key and check."""

    function: str
    item: Callable[[dict[str, Any]], dict[str, Any]]
    key: Callable[[dict[str, Any]], str]
    state: Callable[[Any, dict[str, Any]], str]
    sort: Callable[[dict[str, Any]], Any] = lambda payload: 0


def _anchor_item(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": ANCHOR_KINDS[p["kind"]],
        "reference": key32(p["reference"]),
        "root": bytes32(p["root"]),
    }


def _anchor_state(ledger, p: dict[str, Any]) -> str:
    item = _anchor_item(p)
    stored = ledger.functions.anchors(item["kind"], item["reference"]).call()
    return _compare(stored == ZERO, stored == bytes32(p["root"]))


def _issue_item(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "lot": key32(p["lot"]),
        "first": p["first"],
        "count": p["count"],
        "buffer": p["buffer"],
        "details": bytes32(p["details"]),
    }


def _issue_state(ledger, p: dict[str, Any]) -> str:
    count, buffer, details = ledger.functions.issuances(key32(p["lot"]), p["first"]).call()
    same = (count, buffer, details) == (p["count"], p["buffer"], bytes32(p["details"]))
    return _compare(count == 0, same)


def _retire_item(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "lot": key32(p["lot"]),
        "first": p["first"],
        "count": p["count"],
        "certificate": bytes32(p["certificate"]),
    }


def _retire_state(ledger, p: dict[str, Any]) -> str:
    count, certificate = ledger.functions.retirements(key32(p["lot"]), p["first"]).call()
    return _compare(count == 0, (count, certificate) == (p["count"], bytes32(p["certificate"])))


def _policy_item(p: dict[str, Any]) -> dict[str, Any]:
    return {"bundle": key32(p["bundle"]), "policy": bytes32(p["policy"])}


def _policy_state(ledger, p: dict[str, Any]) -> str:
    stored = ledger.functions.split_policies(key32(p["bundle"])).call()
    return _compare(stored == ZERO, stored == bytes32(p["policy"]))


def _pay_item(p: dict[str, Any]) -> dict[str, Any]:
    return {"id": key32(p["id"]), "household": bytes32(p["household"]), "amount": p["amount"]}


def _accrual_state(ledger, p: dict[str, Any]) -> str:
    household, amount = ledger.functions.accruals(key32(p["id"])).call()
    return _compare(amount == 0, (household, amount) == (bytes32(p["household"]), p["amount"]))


def _settlement_state(ledger, p: dict[str, Any]) -> str:
    household, amount, _confirmed = ledger.functions.settlements(key32(p["id"])).call()
    return _compare(amount == 0, (household, amount) == (bytes32(p["household"]), p["amount"]))


def _compare(empty: bool, same: bool) -> str:
    if empty:
        return NOT_DONE
    return DONE if same else CONFLICT


KINDS: dict[str, Kind] = {
    "anchor": Kind(
        "anchor",
        _anchor_item,
        lambda p: f"anchor:{p['kind']}:{p['reference']}",
        _anchor_state,
    ),
    "split_policy": Kind(
        "set_split_policies", _policy_item, lambda p: f"split_policy:{p['bundle']}", _policy_state
    ),
    "issue": Kind(
        "issue",
        _issue_item,
        lambda p: f"issue:{p['lot']}:{p['first']}",
        _issue_state,
        sort=lambda p: (p["lot"], p["first"]),
    ),
    "retire": Kind(
        "retire", _retire_item, lambda p: f"retire:{p['lot']}:{p['first']}", _retire_state
    ),
    "accrue": Kind("accrue", _pay_item, lambda p: f"accrue:{p['id']}", _accrual_state),
    "settle": Kind("settle", _pay_item, lambda p: f"settle:{p['id']}", _settlement_state),
}


def chain_key(kind: str, /, **payload: Any) -> str:
    """The chain outbox key of an item (one row per key): `chain_key("retire", lot=…, first=…)`
    is `retire:<lot>:<first>`. Only the payload fields the key is made of are needed."""
    return KINDS[kind].key(payload)


# Kinds whose rows must reach the chain in the order they were written, because one reads
# what the other wrote (a retirement needs its issuance; a settlement needs its accrual).
ORDERED_WITH: dict[str, frozenset[str]] = {
    "anchor": frozenset(),
    "split_policy": frozenset(),
    "issue": frozenset({"retire"}),
    "retire": frozenset({"issue"}),
    "accrue": frozenset({"settle"}),
    "settle": frozenset({"accrue"}),
}


def validate(kind: str, payload: dict[str, Any]) -> None:
    """Raise ValueError unless `payload` encodes into a valid item of `kind`."""
    if kind not in KINDS:
        raise ValueError(f"unknown chain kind {kind!r}")
    try:
        item = KINDS[kind].item(payload)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"bad {kind} payload: {error}") from error
    for name, value in item.items():
        if name in ("first", "count", "amount") and (
            not isinstance(value, int) or isinstance(value, bool) or value <= 0
        ):
            raise ValueError(f"{kind}.{name} must be a positive integer")
    if kind == "anchor" and bytes32(payload["root"]) == ZERO:
        raise ValueError("anchor root is zero")
