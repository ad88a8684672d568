"""What the registry writes to the ledger, and how each item is named and hashed.

Called inside the registry's own transactions (docs/registry.md, "Chain hooks"); the same
functions recompute every item from the database for `sipang reconcile`.
"""

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from flask import current_app
from sqlite_utils import Database

from server import anchors, chain
from server.chain.ledger_items import bytes32, chain_key, key32
from server.contracts import LEDGER, load_artifact
from server.db import get_db


def report_reference(verification_id: int) -> str:
    return f"verification:{verification_id}"


def bundle_reference(county_code: str, seq: int, version: int) -> str:
    """A bundle version on chain: `<county>-<bundle number>-v<version>`."""
    return f"{county_code}-{seq:04d}-v{version}"


def issuance_details(issuance_id: int, report_sha256: str, buffer: bool) -> str:
    """sha256 of what an issued range stands for: the issuance, its verification report,
    and whether it is the buffer run."""
    document = {"buffer": buffer, "issuance": issuance_id, "report_sha256": report_sha256}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def runs(serials: list[str]) -> Iterator[tuple[str, int, int]]:
    """Consecutive serials as (lot, first seq, count) runs, in serial order."""
    current: list[Any] | None = None
    for text in sorted(serials):
        lot, seq_text = text.rsplit("-", 1)
        seq = int(seq_text)
        if current and current[0] == lot and current[1] + current[2] == seq:
            current[2] += 1
            continue
        if current:
            yield tuple(current)
        current = [lot, seq, 1]
    if current:
        yield tuple(current)


def issuance_ranges(db: Database, issuance_id: int) -> list[tuple[str, int, int, bool, str]]:
    """An issuance's ranges as (lot, first, count, buffer, details): the sellable run then
    the buffer run, each contiguous within its lot."""
    row = db.execute(
        """SELECT v.report_sha256 FROM issuances i JOIN verifications v
           ON v.id = i.verification_id WHERE i.id = ?""",
        [issuance_id],
    ).fetchone()
    out = []
    for buffer in (0, 1):
        serials = [
            r[0]
            for r in db.execute(
                "SELECT serial FROM tonnes WHERE issuance_id = ? AND buffer = ? ORDER BY seq",
                [issuance_id, buffer],
            )
        ]
        details = issuance_details(issuance_id, row[0], bool(buffer))
        for lot, first, count in runs(serials):
            out.append((lot, first, count, bool(buffer), details))
    return out


def queue_report(db: Database, verification_id: int, report_sha256: str) -> None:
    chain.anchor(db, "verification_report", report_reference(verification_id), report_sha256)


def queue_issuance(db: Database, issuance_id: int) -> None:
    """Queue an issuance's serial ranges and the Merkle root of the measurements behind it."""
    for lot, first, count, buffer, details in issuance_ranges(db, issuance_id):
        chain.issue_range(db, lot, first, count, details, buffer=buffer)
    anchors.queue_measurements(db, issuance_id)


def queue_split_policy(db: Database, county_code: str, seq: int, version: int, rules_sha256: str):
    chain.set_split_policy(db, bundle_reference(county_code, seq, version), rules_sha256)


def queue_retirement(db: Database, certificate_sha256: str, serials: list[str]) -> None:
    for lot, first, count in runs(serials):
        chain.retire_range(db, lot, first, count, certificate_sha256)


LEDGER_EXTENSION = "sipang.ledger"


def ledger_reader():
    """The ledger contract to read from in a request: the one attached to the app
    (`app.extensions["sipang.ledger"]`), else the recorded deployment at CHAIN_RPC; None
    when there is no node to ask."""
    app = current_app
    if app.extensions.get(LEDGER_EXTENSION) is not None:
        return app.extensions[LEDGER_EXTENSION]
    url = app.config.get("CHAIN_RPC")
    if not url:
        return None
    deployment = (
        get_db()
        .execute("SELECT address FROM chain_deployments ORDER BY id DESC LIMIT 1")
        .fetchone()
    )
    if deployment is None:
        return None
    from web3 import HTTPProvider, Web3  # the node client, loaded only when a node is asked

    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": 2}))
    contract = w3.eth.contract(
        address=Web3.to_checksum_address(deployment[0]), abi=load_artifact(LEDGER)["abi"]
    )
    app.extensions[LEDGER_EXTENSION] = contract
    return contract


def certificate_record(db: Database, cert: dict[str, Any], contract=None) -> dict[str, Any]:
    """A certificate's retirements on the ledger: each run's outbox state, transaction and
    block, and (when a node can be read) whether the chain holds exactly this certificate.

    `status` is `confirmed` (every run mined), `pending`, `failed`, or `missing`."""
    serials = [
        r[0]
        for r in db.execute("SELECT serial FROM retirements WHERE certificate_id = ?", [cert["id"]])
    ]
    items = []
    for lot, first_seq, count in runs(serials):
        row = next(
            db.query(
                "SELECT state, tx_hash, block_number, note FROM chain_outbox WHERE chain_key = ?",
                [chain_key("retire", lot=lot, first=first_seq)],
            ),
            None,
        )
        item = {
            "lot": lot,
            "first": first_seq,
            "count": count,
            "state": row["state"] if row else "missing",
            "tx_hash": row["tx_hash"] if row else None,
            "block_number": row["block_number"] if row else None,
            "on_chain_matches": None,
        }
        if contract is not None and item["state"] == "confirmed":
            try:
                stored = contract.functions.retirements(key32(lot), first_seq).call()
                item["on_chain_matches"] = tuple(stored) == (count, bytes32(cert["sha256"]))
            except Exception:  # noqa: BLE001 - a node that cannot answer leaves it unknown
                item["on_chain_matches"] = None
                contract = None  # and is not asked again for this page
        items.append(item)
    states = {item["state"] for item in items}
    if not items or "missing" in states:
        status = "missing"
    elif "failed" in states:
        status = "failed"
    elif states == {"confirmed"}:
        status = "confirmed"
    else:
        status = "pending"
    checked = [item["on_chain_matches"] for item in items]
    matches = False if False in checked else None if not items or None in checked else True
    return {
        "status": status,
        "runs": items,
        "on_chain_matches": matches,
        "certificate": "0x" + cert["sha256"],
    }


def cancellation_reference(bundle_id: int, batch: int) -> str:
    return f"cancellation:{bundle_id}:{batch}"


def cancellation_root(bundle_id: int, batch: int, serials: list[str]) -> str:
    """sha256 of one batch of serials cancelled for losses: the bundle, the batch, the serials."""
    document = {"batch": batch, "bundle": bundle_id, "serials": sorted(serials)}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def queue_cancellation(db: Database, bundle_id: int, batch: int, serials: list[str]) -> None:
    """Anchor a batch of serials cancelled for losses (inside the caller's transaction)."""
    chain.anchor(
        db,
        "buffer_cancellation",
        cancellation_reference(bundle_id, batch),
        cancellation_root(bundle_id, batch, serials),
    )
