"""The comparison itself: each ledger item recomputed from the business tables, read from
the contract in JSON-RPC batches, and every disagreement listed."""

from collections.abc import Iterator
from typing import Any

from sqlite_utils import Database

from server.chain.ledger_items import (
    ANCHOR_KINDS,
    ZERO,
    bytes32,
    chain_key,
    county_salt,
    household_hash,
    key32,
)
from server.chain.node import HTTPProvider  # web3, imported the way the chain does
from server.payouts.accruals import accrual_reference
from server.payouts.settlement import batch_reference, batch_root, settlement_reference
from server.reconcile import anchored
from server.reconcile.items import Check, Difference, as_hex
from server.registry import chain_hooks

BATCH_CALLS = 250


class Reconciler:
    """Compares one database with one ledger contract."""

    def __init__(
        self,
        db: Database,
        contract,
        code_key: str,
        pii_key: str | None = None,
        audit_key: str | None = None,
    ):
        self.db = db
        self.contract = contract
        self.functions = contract.functions
        self.pii_key = pii_key
        self.audit_key = audit_key
        self.code_key = code_key
        self.salts: dict[str, bytes] = {}
        self.states = {
            row["chain_key"]: row["state"]
            for row in db.query("SELECT chain_key, state FROM chain_outbox")
        }
        self.checked = 0

    def _waiting(self, key: str) -> bool:
        return self.states.get(key) != "confirmed"

    def household(self, county_code: str, code: str) -> str:
        if county_code not in self.salts:
            self.salts[county_code] = county_salt(self.code_key, county_code)
        return household_hash(self.salts[county_code], code)

    def anchors(self) -> Iterator["Difference | Check"]:
        kind = ANCHOR_KINDS["verification_report"]
        for row in self.db.query(
            "SELECT id, report_sha256 FROM verifications "
            "WHERE report_sha256 IS NOT NULL ORDER BY id"
        ):
            reference = chain_hooks.report_reference(row["id"])
            yield Check(
                "verifications",
                row["id"],
                f"report anchor {reference}",
                chain_key("anchor", kind="verification_report", reference=reference),
                bytes32(row["report_sha256"]),
                self.functions.anchors(kind, key32(reference)),
                bytes,
            )

    def cancellations(self) -> Iterator["Difference | Check"]:
        """Each batch of serials cancelled for carbon lost after crediting."""
        kind = ANCHOR_KINDS["buffer_cancellation"]
        batches: dict[tuple[int, int], list[str]] = {}
        for row in self.db.query(
            "SELECT bundle_id, batch, serial FROM loss_cancellations ORDER BY bundle_id, batch"
        ):
            batches.setdefault((row["bundle_id"], row["batch"]), []).append(row["serial"])
        last = {bundle_id: 0 for (bundle_id,) in self.db.execute("SELECT id FROM bundles")}
        for (bundle_id, batch), serials in batches.items():
            last[bundle_id] = max(last.get(bundle_id, 0), batch)
            reference = chain_hooks.cancellation_reference(bundle_id, batch)
            yield Check(
                "loss_cancellations",
                bundle_id,
                f"cancellation anchor {reference}",
                chain_key("anchor", kind="buffer_cancellation", reference=reference),
                bytes32(chain_hooks.cancellation_root(bundle_id, batch, serials)),
                self.functions.anchors(kind, key32(reference)),
                bytes,
            )
        for bundle_id, batch in last.items():  # a batch deleted from the database
            reference = chain_hooks.cancellation_reference(bundle_id, batch + 1)
            yield Check(
                "loss_cancellations",
                bundle_id,
                f"no cancellation anchor {reference}",
                chain_key("anchor", kind="buffer_cancellation", reference=reference),
                b"\x00" * 32,
                self.functions.anchors(kind, key32(reference)),
                bytes,
            )

    def settlement_batches(self) -> Iterator["Difference | Check"]:
        kind = ANCHOR_KINDS["settlement_batch"]
        for row in self.db.query("SELECT id, settle_on FROM settlement_batches ORDER BY id"):
            root = batch_root(self.db, row["id"])
            if root is None:  # transfers still wait; anchored once all are recorded
                continue
            reference = batch_reference(row["settle_on"])
            yield Check(
                "settlement_batches",
                row["id"],
                f"batch anchor {reference}",
                chain_key("anchor", kind="settlement_batch", reference=reference),
                bytes32(root),
                self.functions.anchors(kind, key32(reference)),
                bytes,
            )

    def split_policies(self) -> Iterator["Difference | Check"]:
        for row in self.db.query(
            """SELECT b.id, b.seq, b.version, b.rules_sha256, c.code FROM bundles b
               JOIN counties c ON c.id = b.county_id ORDER BY b.id"""
        ):
            reference = chain_hooks.bundle_reference(row["code"], row["seq"], row["version"])
            yield Check(
                "bundles",
                row["id"],
                f"split policy {reference}",
                chain_key("split_policy", bundle=reference),
                bytes32(row["rules_sha256"]),
                self.functions.split_policies(key32(reference)),
                bytes,
            )

    def issuances(self) -> Iterator["Difference | Check"]:
        for row in self.db.query("SELECT id FROM issuances ORDER BY id"):
            for lot, first, count, buffer, details in chain_hooks.issuance_ranges(
                self.db, row["id"]
            ):
                yield Check(
                    "issuances",
                    row["id"],
                    f"range {lot} {first}+{count}{' buffer' if buffer else ''}",
                    chain_key("issue", lot=lot, first=first),
                    (count, buffer, bytes32(details)),
                    self.functions.issuances(key32(lot), first),
                    lambda stored: (stored[0], stored[1], bytes(stored[2])),
                )
        for row in self.db.query("SELECT series, max(seq) AS top FROM tonnes GROUP BY series"):
            yield Check(
                "tonnes",
                row["series"],
                "tonnes issued in the lot",
                chain_key("issue", lot=row["series"], first=1),
                row["top"],
                self.functions.issued(key32(row["series"])),
            )

    def retirements(self) -> Iterator["Difference | Check"]:
        for cert in self.db.query("SELECT id, sha256 FROM certificates ORDER BY id"):
            serials = [
                r[0]
                for r in self.db.execute(
                    "SELECT serial FROM retirements WHERE certificate_id = ?", [cert["id"]]
                )
            ]
            for lot, first, count in chain_hooks.runs(serials):
                yield Check(
                    "certificates",
                    cert["id"],
                    f"retirement {lot} {first}+{count}",
                    chain_key("retire", lot=lot, first=first),
                    (count, bytes32(cert["sha256"])),
                    self.functions.retirements(key32(lot), first),
                    lambda stored: (stored[0], bytes(stored[1])),
                )

    def accruals(self) -> Iterator["Difference | Check"]:
        for row in self.db.query(
            """SELECT a.id, a.amount_fen, a.household_hash, coalesce(h.ledger_key, h.code) AS code,
                      c.code AS county
               FROM accruals a JOIN households h ON h.id = a.household_id
               JOIN villages v ON v.id = h.village_id JOIN counties c ON c.id = v.county_id
               ORDER BY a.id"""
        ):
            expected = self.household(row["county"], row["code"])
            if row["household_hash"] != expected:
                self.checked += 1
                yield Difference(
                    "accruals", row["id"], "household hash", row["household_hash"], expected
                )
            reference = accrual_reference(row["id"])
            yield Check(
                "accruals",
                row["id"],
                f"accrual {reference} (household, fen)",
                chain_key("accrue", id=reference),
                (bytes32(expected), row["amount_fen"]),
                self.functions.accruals(key32(reference)),
                lambda stored: (bytes(stored[0]), stored[1]),
            )

    def settlements(self) -> Iterator["Difference | Check"]:
        for row in self.db.query(
            """SELECT s.id, s.status, s.amount_fen, s.household_hash,
                      coalesce(h.ledger_key, h.code) AS code,
                      c.code AS county FROM settlements s
               JOIN households h ON h.id = s.household_id
               JOIN villages v ON v.id = h.village_id JOIN counties c ON c.id = v.county_id
               ORDER BY s.id"""
        ):
            expected = self.household(row["county"], row["code"])
            if row["household_hash"] != expected:
                self.checked += 1
                yield Difference(
                    "settlements", row["id"], "household hash", row["household_hash"], expected
                )
            reference = settlement_reference(row["id"])
            database = (
                (bytes32(expected), row["amount_fen"]) if row["status"] == "paid" else (ZERO, 0)
            )
            yield Check(
                "settlements",
                row["id"],
                f"settlement {reference} ({row['status']}; household, fen)",
                chain_key("settle", id=reference),
                database,
                self.functions.settlements(key32(reference)),
                lambda stored: (bytes(stored[0]), stored[1]),
            )

    def accounts(self) -> Iterator["Difference | Check"]:
        """Each household's totals, so an item on chain the database lacks shows too."""
        for row in self.db.query(
            """SELECT p.household_id, coalesce(h.ledger_key, p.code) AS code, c.code AS county,
                      p.accrued_fen, p.paid_fen
               FROM household_payouts p JOIN counties c ON c.id = p.county_id
               JOIN households h ON h.id = p.household_id
               ORDER BY p.household_id"""
        ):
            expected = self.household(row["county"], row["code"])
            accruals = [
                a[0]
                for a in self.db.execute(
                    "SELECT id FROM accruals WHERE household_id = ?", [row["household_id"]]
                )
            ]
            yield Check(
                "households",
                row["household_id"],
                "totals (accrued, settled) in fen",
                [chain_key("accrue", id=accrual_reference(a)) for a in accruals],
                (row["accrued_fen"], row["paid_fen"]),
                self.functions.accounts(bytes32(expected)),
                tuple,
            )

    def anchored(self) -> Iterator["Difference | Check"]:
        """What money and tonnes rest on (server.anchors): measurements, orders, bank
        details, retired tonnes, the audit log."""
        return anchored.checks(self)

    def run(self) -> list[Difference]:
        found: list[Difference] = []
        checks: list[Check] = []
        for part in (
            self.anchors,
            self.cancellations,
            self.split_policies,
            self.issuances,
            self.retirements,
            self.accruals,
            self.settlements,
            self.settlement_batches,
            self.accounts,
            self.anchored,
        ):
            for item in part():
                (checks if isinstance(item, Check) else found).append(item)
        for check, stored in zip(checks, self._call_all(checks), strict=True):
            self.checked += 1
            chain = check.transform(stored)
            if check.database != chain:
                keys = [check.key] if isinstance(check.key, str) else check.key
                found.append(
                    Difference(
                        check.table,
                        check.row,
                        check.item,
                        as_hex(check.database),
                        as_hex(chain),
                        any(self._waiting(key) for key in keys),
                    )
                )
        return found

    def _call_all(self, checks: list["Check"]) -> list[Any]:
        """Every check's contract call: JSON-RPC batches of BATCH_CALLS over HTTP, else
        one by one (py-evm)."""
        if not checks:
            return []
        w3 = checks[0].call.w3
        if not isinstance(w3.provider, HTTPProvider):
            return [check.call.call() for check in checks]
        results: list[Any] = []
        for start in range(0, len(checks), BATCH_CALLS):
            with w3.batch_requests() as batch:
                for check in checks[start : start + BATCH_CALLS]:
                    batch.add(check.call)
                results.extend(batch.execute())
        return results


def reconcile(
    db: Database,
    contract,
    code_key: str,
    pii_key: str | None = None,
    audit_key: str | None = None,
) -> tuple[list[Difference], int]:
    """Every difference between the database and the ledger, and how many items were
    compared. With `pii_key` bank details are compared with the last settlement's; with
    `audit_key` the audit log's hash chain is walked too."""
    reconciler = Reconciler(db, contract, code_key, pii_key, audit_key)
    return reconciler.run(), reconciler.checked
