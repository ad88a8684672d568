"""Deploying the ledger contract once per chain, and finding it again from the database."""

import hashlib
from typing import Any

from sqlite_utils import Database

from server.chain.connection import Chain
from server.clock import now_iso
from server.contracts import LEDGER, load_artifact
from server.db import first, insert, transaction


def bytecode_sha256(artifact: dict[str, Any]) -> str:
    return hashlib.sha256(artifact["bytecode"].encode()).hexdigest()


def deploy_ledger(chain: Chain, db: Database) -> dict[str, Any]:
    """Deploy the ledger from the committed artifact and record the deployment."""
    artifact = load_artifact(LEDGER)
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = factory.constructor().build_transaction(
        {
            "from": chain.address,
            "nonce": chain.w3.eth.get_transaction_count(chain.address, "pending"),
            "chainId": chain.chain_id,
        }
    )
    signed = chain.account.sign_transaction(tx)
    tx_hash = chain.w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = chain.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60)
    if receipt["status"] != 1:
        raise RuntimeError("the ledger deployment reverted")
    row = {
        "chain_id": chain.chain_id,
        "contract": LEDGER,
        "address": receipt["contractAddress"],
        "bytecode_sha256": bytecode_sha256(artifact),
        "tx_hash": "0x" + bytes(tx_hash).hex(),
        "block_number": receipt["blockNumber"],
        "deployer": chain.address,
        "deployed_at": now_iso(),
    }
    with transaction(db):
        row["id"] = insert(db, "chain_deployments", row)
    chain.use_ledger(row["address"], artifact["abi"])
    return row


def current_deployment(chain: Chain, db: Database) -> dict[str, Any] | None:
    """The latest recorded ledger on this chain whose code is still there."""
    artifact = load_artifact(LEDGER)
    row = first(
        db,
        "SELECT * FROM chain_deployments WHERE chain_id = ? AND contract = ? "
        "ORDER BY id DESC LIMIT 1",
        [chain.chain_id, LEDGER],
    )
    if row is None or not chain.w3.eth.get_code(row["address"]):
        return None
    chain.use_ledger(row["address"], artifact["abi"])
    return row


def attach(chain: Chain, db: Database, address: str | None = None) -> dict[str, Any]:
    """Use the ledger at `address` (CHAIN_CONTRACT), else the recorded one, else deploy it."""
    artifact = load_artifact(LEDGER)
    if address:
        if not chain.w3.eth.get_code(address):
            raise RuntimeError(f"no contract at {address} on chain {chain.chain_id}")
        chain.use_ledger(address, artifact["abi"])
        return {"chain_id": chain.chain_id, "contract": LEDGER, "address": chain.ledger.address}
    return current_deployment(chain, db) or deploy_ledger(chain, db)
