"""Deploying the ledger contract once per chain, and finding it again from the database."""

import hashlib
from typing import Any

from sqlite_utils import Database

from server.chain.node import Chain
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


class LedgerMissing(RuntimeError):
    """The database records a ledger this node does not hold: never deploy a second one."""


def attach(chain: Chain, db: Database, address: str | None = None) -> dict[str, Any]:
    """Use the ledger at `address` (CHAIN_CONTRACT), else the recorded one; deploy it only
    when the database records no ledger at all. A recorded ledger the node lacks (an empty
    or wrong node, a restore without the chain's state) raises LedgerMissing."""
    artifact = load_artifact(LEDGER)
    if address:
        if not chain.w3.eth.get_code(address):
            raise RuntimeError(f"no contract at {address} on chain {chain.chain_id}")
        chain.use_ledger(address, artifact["abi"])
        return {"chain_id": chain.chain_id, "contract": LEDGER, "address": chain.ledger.address}
    found = current_deployment(chain, db)
    if found is not None:
        return found
    recorded = first(
        db,
        "SELECT chain_id, address FROM chain_deployments WHERE contract = ? "
        "ORDER BY id DESC LIMIT 1",
        [LEDGER],
    )
    if recorded is not None:
        raise LedgerMissing(
            f"the ledger {recorded['address']} recorded on chain {recorded['chain_id']} is not "
            f"on this node (chain {chain.chain_id}); restore the node's state with the database "
            "(sipang restore), point CHAIN_RPC at the node that holds it, or set CHAIN_CONTRACT. "
            "A second, empty ledger is never deployed."
        )
    return deploy_ledger(chain, db)
