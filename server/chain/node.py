"""Connecting to a ledger node: in-process py-evm, a local anvil, or any JSON-RPC URL.

`Chain` bundles a Web3 connection, the platform's signing account and the deployed ledger
contract. Transactions are always signed locally, so a transaction's hash is known (and
recorded) before it is broadcast.
"""

import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

_limit = sys.getrecursionlimit()
from web3 import EthereumTesterProvider, HTTPProvider, Web3  # noqa: E402
from web3.contract import Contract  # noqa: E402

from server.instance import read_or_create_secret  # noqa: E402

sys.setrecursionlimit(_limit)  # a web3 dependency raises it process-wide on import

ENGINES = ("pyevm", "anvil", "rpc")
DEV_KEY_FILE = "chain.key"
DEV_FUNDS_WEI = 10**24  # a million ether: gas on a development chain only


@dataclass
class Chain:
    """A connection, the account that signs, and (once known) the ledger contract."""

    w3: Web3
    account: LocalAccount
    engine: str
    ledger: Contract | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return self.account.address

    @property
    def chain_id(self) -> int:
        if "chain_id" not in self.details:
            self.details["chain_id"] = self.w3.eth.chain_id
        return self.details["chain_id"]

    def use_ledger(self, address: str, abi: list[dict[str, Any]]) -> Contract:
        self.ledger = self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)
        return self.ledger


def load_key(config: dict[str, Any], instance: Path | None = None) -> LocalAccount:
    """The signing key: CHAIN_KEY, else CHAIN_KEYSTORE (+ password), else a dev key file.

    The development key (`chain.key` in the instance folder) is only for py-evm and anvil.
    """
    if config.get("CHAIN_KEY"):
        return Account.from_key(config["CHAIN_KEY"])
    if config.get("CHAIN_KEYSTORE"):
        password = config.get("CHAIN_KEYSTORE_PASSWORD")
        if password is None:
            raise ValueError("CHAIN_KEYSTORE needs CHAIN_KEYSTORE_PASSWORD")
        keystore = json.loads(Path(config["CHAIN_KEYSTORE"]).read_text(encoding="utf-8"))
        return Account.from_key(Account.decrypt(keystore, password))
    if instance is None:
        return Account.from_key("0x" + secrets.token_hex(32))
    return Account.from_key("0x" + read_or_create_secret(Path(instance), DEV_KEY_FILE))


def write_keystore(path: Path, key: str, password: str, iterations: int | None = None) -> str:
    """Encrypt `key` into an eth-account keystore file (mode 0600); returns its address.

    `iterations` lowers scrypt's work factor (default 2^18) for throwaway test keys only.
    """
    keystore = Account.encrypt(key, password, iterations=iterations)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(keystore, handle)
    return Web3.to_checksum_address(keystore["address"])


def connect_pyevm(account: LocalAccount | None = None) -> Chain:
    """A fresh in-process py-evm chain with `account` funded from its test accounts."""
    w3 = Web3(EthereumTesterProvider())
    account = account or Account.from_key("0x" + secrets.token_hex(32))
    funder = w3.eth.accounts[0]
    sent = w3.eth.send_transaction({"from": funder, "to": account.address, "value": 10**23})
    w3.eth.wait_for_transaction_receipt(sent)
    return Chain(w3, account, "pyevm")


def connect_url(url: str, account: LocalAccount, engine: str = "rpc", timeout: float = 10) -> Chain:
    """A JSON-RPC node; on `anvil` the account is given development funds."""
    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}))
    chain = Chain(w3, account, engine, details={"url": url})
    if engine == "anvil":
        fund_on_anvil(chain)
    return chain


def fund_on_anvil(chain: Chain) -> None:
    """Give the signing account development funds (anvil's own RPC method)."""
    if chain.w3.eth.get_balance(chain.address) < DEV_FUNDS_WEI // 2:
        chain.w3.provider.make_request("anvil_setBalance", [chain.address, hex(DEV_FUNDS_WEI)])


def connect(config: dict[str, Any], engine: str | None = None, url: str | None = None) -> Chain:
    """Connect as the settings say: `engine` defaults to `rpc` when CHAIN_RPC is set."""
    instance = Path(config["INSTANCE_PATH"]) if config.get("INSTANCE_PATH") else None
    engine = engine or ("rpc" if config.get("CHAIN_RPC") else "anvil")
    if engine not in ENGINES:
        raise ValueError(f"unknown chain engine {engine!r}; one of {ENGINES}")
    if engine == "pyevm":
        return connect_pyevm(load_key(config, instance))
    url = url or config.get("CHAIN_RPC")
    if not url:
        raise ValueError(f"the {engine} engine needs a JSON-RPC URL")
    return connect_url(url, load_key(config, instance), engine)
