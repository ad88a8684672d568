"""The ledger contract on in-process py-evm: every event and every revert path."""

import re
from pathlib import Path

import pytest
from eth_tester import EthereumTester
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import EthereumTesterProvider, Web3
from web3.logs import DISCARD

from server.chain.worker import revert_reason
from server.contracts import LEDGER, artifact_path, load_artifact, source_path
from server.contracts.build import compile_contract, main, render

ADMIN, REGISTRAR, BUREAU = 1, 2, 4
LOT = b"L" * 32
BUFFER_LOT = b"B" * 32
CERT = b"C" * 32
HOUSEHOLD = b"H" * 32
ZERO = b"\x00" * 32


class Ledger:
    """A deployed ledger and the tester's accounts: owner, admin, registrar, bureau, stranger."""

    def __init__(self):
        self.tester = EthereumTester()
        self.w3 = Web3(EthereumTesterProvider(self.tester))
        accounts = self.w3.eth.accounts
        self.owner, self.admin, self.registrar, self.bureau, self.stranger = accounts[:5]
        artifact = load_artifact()
        factory = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        self.deploy_receipt = self.mined(factory.constructor().transact({"from": self.owner}))
        self.contract = self.w3.eth.contract(
            address=self.deploy_receipt["contractAddress"], abi=artifact["abi"]
        )
        self.f = self.contract.functions
        self.send(self.f.grant_role(self.admin, ADMIN), self.owner)
        self.send(self.f.grant_role(self.registrar, REGISTRAR), self.admin)
        self.send(self.f.grant_role(self.bureau, BUREAU), self.admin)

    def mined(self, tx_hash):
        return self.w3.eth.wait_for_transaction_receipt(tx_hash)

    def send(self, call, sender=None):
        receipt = self.mined(call.transact({"from": sender or self.registrar}))
        assert receipt["status"] == 1
        return receipt

    def events(self, receipt, name):
        return [
            dict(e["args"])
            for e in getattr(self.contract.events, name)().process_receipt(receipt, errors=DISCARD)
        ]

    def refuses(self, call, reason, sender=None):
        with pytest.raises(Exception) as caught:  # noqa: B017 - checked by reason below
            call.transact({"from": sender or self.registrar})
        assert revert_reason(caught.value) == reason


@pytest.fixture(scope="module")
def deployed():
    return Ledger()


@pytest.fixture
def ledger(deployed):
    snapshot = deployed.tester.take_snapshot()
    yield deployed
    deployed.tester.revert_to_snapshot(snapshot)


def anchor(kind=1, reference=b"r" * 32, root=b"\x01" * 32):
    return {"kind": kind, "reference": reference, "root": root}


def issue(first, count, lot=LOT, buffer=False, details=b"d" * 32):
    return {"lot": lot, "first": first, "count": count, "buffer": buffer, "details": details}


def retire(first, count, lot=LOT, certificate=CERT):
    return {"lot": lot, "first": first, "count": count, "certificate": certificate}


def pay(ident, amount, household=HOUSEHOLD):
    return {"id": ident, "household": household, "amount": amount}


# -- artifacts ----------------------------------------------------------------------


def test_committed_artifacts_match_the_source():
    assert artifact_path(LEDGER).read_text(encoding="utf-8") == render(compile_contract(LEDGER))
    assert main(["--check"]) == 0


def test_every_revert_reason_is_exercised_here():
    reasons = set(re.findall(r'assert .+, "([^"]+)"', source_path(LEDGER).read_text()))
    here = Path(__file__).read_text()
    assert len(reasons) >= 20
    assert [
        reason
        for reason in sorted(reasons)
        if f'"{reason}"' not in here.split("# -- roles ---")[-1]
    ] == []


# -- roles --------------------------------------------------------------------------


def test_deployer_becomes_owner_admin_and_registrar(ledger):
    assert ledger.f.owner().call() == ledger.owner
    assert ledger.f.roles(ledger.owner).call() == ADMIN | REGISTRAR
    assert ledger.events(ledger.deploy_receipt, "OwnershipTransferred") == [
        {"previous": "0x" + "0" * 40, "owner": ledger.owner}
    ]
    assert ledger.events(ledger.deploy_receipt, "RoleGranted") == [
        {"account": ledger.owner, "role": ADMIN | REGISTRAR, "sender": ledger.owner}
    ]


def test_roles_are_granted_and_revoked_with_events(ledger):
    assert ledger.f.has_role(ledger.bureau, BUREAU).call()
    assert not ledger.f.has_role(ledger.bureau, REGISTRAR).call()
    receipt = ledger.send(ledger.f.grant_role(ledger.stranger, REGISTRAR | BUREAU), ledger.admin)
    assert ledger.events(receipt, "RoleGranted") == [
        {"account": ledger.stranger, "role": REGISTRAR | BUREAU, "sender": ledger.admin}
    ]
    receipt = ledger.send(ledger.f.revoke_role(ledger.stranger, BUREAU), ledger.admin)
    assert ledger.events(receipt, "RoleRevoked") == [
        {"account": ledger.stranger, "role": BUREAU, "sender": ledger.admin}
    ]
    assert ledger.f.roles(ledger.stranger).call() == REGISTRAR


@pytest.mark.parametrize("function", ["grant_role", "revoke_role"])
def test_only_the_owner_manages_admins(ledger, function):
    call = getattr(ledger.f, function)(ledger.stranger, ADMIN)
    ledger.refuses(call, "not owner", ledger.admin)
    ledger.send(call, ledger.owner)


@pytest.mark.parametrize("function", ["grant_role", "revoke_role"])
def test_only_admins_manage_registrars_and_bureaus(ledger, function):
    ledger.refuses(getattr(ledger.f, function)(ledger.stranger, BUREAU), "missing role")
    ledger.refuses(
        getattr(ledger.f, function)(ledger.stranger, REGISTRAR), "missing role", ledger.bureau
    )


@pytest.mark.parametrize("role", [0, 8, 9])
@pytest.mark.parametrize("function", ["grant_role", "revoke_role"])
def test_unknown_roles_are_refused(ledger, function, role):
    ledger.refuses(getattr(ledger.f, function)(ledger.stranger, role), "unknown role", ledger.owner)


def test_roles_are_never_granted_to_the_zero_address(ledger):
    ledger.refuses(ledger.f.grant_role("0x" + "0" * 40, BUREAU), "zero address", ledger.admin)


def test_ownership_transfers_with_an_event(ledger):
    ledger.refuses(ledger.f.transfer_ownership(ledger.admin), "not owner", ledger.admin)
    ledger.refuses(ledger.f.transfer_ownership("0x" + "0" * 40), "zero address", ledger.owner)
    receipt = ledger.send(ledger.f.transfer_ownership(ledger.admin), ledger.owner)
    assert ledger.events(receipt, "OwnershipTransferred") == [
        {"previous": ledger.owner, "owner": ledger.admin}
    ]
    assert ledger.f.owner().call() == ledger.admin
    ledger.refuses(ledger.f.grant_role(ledger.stranger, ADMIN), "not owner", ledger.owner)


# -- anchors ------------------------------------------------------------------------


def test_anchors_are_stored_with_an_event_each(ledger):
    items = [anchor(1, b"a" * 32, b"\x01" * 32), anchor(3, b"a" * 32, b"\x02" * 32)]
    receipt = ledger.send(ledger.f.anchor(items))
    assert ledger.events(receipt, "Anchored") == items
    assert ledger.f.anchors(1, b"a" * 32).call() == b"\x01" * 32
    assert ledger.f.anchors(3, b"a" * 32).call() == b"\x02" * 32
    assert ledger.f.anchors(2, b"a" * 32).call() == ZERO


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ([anchor(kind=0)], "kind is zero"),
        ([anchor(root=ZERO)], "root is zero"),
        ([anchor(), anchor(root=b"\x02" * 32)], "already anchored"),
    ],
)
def test_bad_anchors_revert_and_store_nothing(ledger, items, reason):
    ledger.refuses(ledger.f.anchor(items), reason)
    assert ledger.f.anchors(1, b"r" * 32).call() == ZERO


def test_an_anchor_is_never_overwritten(ledger):
    ledger.send(ledger.f.anchor([anchor()]))
    ledger.refuses(ledger.f.anchor([anchor(root=b"\x09" * 32)]), "already anchored")
    ledger.refuses(ledger.f.anchor([anchor()]), "already anchored")
    assert ledger.f.anchors(1, b"r" * 32).call() == b"\x01" * 32


# -- issuance -----------------------------------------------------------------------


def test_issuance_appends_contiguous_ranges(ledger):
    receipt = ledger.send(
        ledger.f.issue([issue(1, 10), issue(11, 5), issue(1, 3, BUFFER_LOT, True)])
    )
    assert ledger.events(receipt, "Issued") == [
        issue(1, 10),
        issue(11, 5),
        issue(1, 3, BUFFER_LOT, True),
    ]
    assert ledger.f.issued(LOT).call() == 15
    assert ledger.f.issued(BUFFER_LOT).call() == 3
    assert ledger.f.issuances(LOT, 11).call() == (5, False, b"d" * 32)
    assert ledger.f.issuances(LOT, 12).call() == (0, False, ZERO)


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ([issue(1, 0)], "empty range"),
        ([issue(2, 5)], "range overlaps or leaves a gap"),
        ([issue(1, 5), issue(5, 5)], "range overlaps or leaves a gap"),
        ([issue(1, 5), issue(1, 5)], "range overlaps or leaves a gap"),
        ([issue(1, 5), issue(7, 5)], "range overlaps or leaves a gap"),
    ],
)
def test_overlapping_or_inconsistent_issuance_reverts(ledger, items, reason):
    ledger.refuses(ledger.f.issue(items), reason)
    assert ledger.f.issued(LOT).call() == 0


def test_buffer_runs_share_the_lot_and_can_never_be_retired(ledger):
    ledger.send(ledger.f.issue([issue(1, 300), issue(301, 75, buffer=True), issue(376, 10)]))
    assert ledger.f.issued(LOT).call() == 385
    flags = [ledger.f.is_buffer(LOT, seq).call() for seq in (300, 301, 375, 376)]
    assert flags == [False, True, True, False]
    ledger.refuses(ledger.f.retire([retire(290, 12)]), "buffer tonnes cannot be retired")
    ledger.refuses(ledger.f.retire([retire(375, 2)]), "buffer tonnes cannot be retired")
    ledger.send(ledger.f.retire([retire(1, 300), retire(376, 10)]))
    assert not ledger.f.is_retired(LOT, 301).call()


def test_a_buffer_run_spans_at_most_128_words(ledger):
    ledger.refuses(ledger.f.issue([issue(1, 256 * 128, buffer=True)]), "range too long")
    ledger.send(ledger.f.issue([issue(1, 256 * 127, buffer=True)]))


def test_issuance_after_a_lot_exists_must_continue_it(ledger):
    ledger.send(ledger.f.issue([issue(1, 100)]))
    ledger.refuses(ledger.f.issue([issue(50, 10)]), "range overlaps or leaves a gap")
    ledger.send(ledger.f.issue([issue(101, 1)]))


# -- retirement ---------------------------------------------------------------------


def test_retirement_marks_each_serial_once(ledger):
    ledger.send(ledger.f.issue([issue(1, 1000)]))
    items = [retire(250, 271), retire(1, 1, certificate=b"D" * 32)]
    receipt = ledger.send(ledger.f.retire(items))
    assert ledger.events(receipt, "Retired") == items
    retired = [
        seq
        for seq in (0, 1, 2, 249, 250, 255, 256, 511, 512, 520, 521)
        if ledger.f.is_retired(LOT, seq).call()
    ]
    assert retired == [1, 250, 255, 256, 511, 512, 520]
    assert ledger.f.retirements(LOT, 250).call() == (271, CERT)


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ([retire(5, 0)], "empty range"),
        ([retire(5, 1, certificate=ZERO)], "certificate is zero"),
        ([retire(0, 2)], "not issued"),
        ([retire(90, 12)], "not issued"),
        ([retire(1, 1, lot=b"X" * 32)], "not issued"),
        ([retire(1, 2, lot=BUFFER_LOT)], "buffer tonnes cannot be retired"),
        ([retire(10, 5), retire(14, 1)], "already retired"),
        ([retire(10, 5), retire(1, 20)], "already retired"),
    ],
)
def test_bad_retirements_revert_and_retire_nothing(ledger, items, reason):
    ledger.send(ledger.f.issue([issue(1, 100), issue(1, 5, BUFFER_LOT, True)]))
    ledger.refuses(ledger.f.retire(items), reason)
    assert not any(ledger.f.is_retired(LOT, seq).call() for seq in range(1, 21))


def test_a_second_retirement_of_a_serial_reverts(ledger):
    ledger.send(ledger.f.issue([issue(1, 100)]))
    ledger.send(ledger.f.retire([retire(40, 20)]))
    ledger.refuses(ledger.f.retire([retire(59, 1, certificate=b"E" * 32)]), "already retired")
    ledger.refuses(ledger.f.retire([retire(30, 11)]), "already retired")
    ledger.send(ledger.f.retire([retire(60, 1)]))


def test_a_retired_range_spans_at_most_128_words(ledger):
    ledger.send(ledger.f.issue([issue(1, 40_000)]))
    ledger.refuses(ledger.f.retire([retire(1, 256 * 128)]), "range too long")
    ledger.send(ledger.f.retire([retire(1, 256 * 127)]))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 700), st.integers(1, 300)), min_size=1, max_size=6))
def test_retirement_reverts_exactly_when_a_serial_was_retired_before(deployed, ranges):
    snapshot = deployed.tester.take_snapshot()
    try:
        deployed.send(deployed.f.issue([issue(1, 1000)]))
        model: set[int] = set()
        for start, count in ranges:
            serials = set(range(start, start + count))
            call = deployed.f.retire([retire(start, count)])
            if start + count - 1 > 1000:
                deployed.refuses(call, "not issued")
            elif serials & model:
                deployed.refuses(call, "already retired")
            else:
                deployed.send(call)
                model |= serials
        probes = {1, 255, 256, 257, 511, 512, 1000} | {s for s, _ in ranges}
        for seq in probes:
            assert deployed.f.is_retired(LOT, seq).call() == (seq in model)
    finally:
        deployed.tester.revert_to_snapshot(snapshot)


# -- split policies -----------------------------------------------------------------


def test_split_policy_is_fixed_once_per_bundle(ledger):
    items = [{"bundle": b"b" * 32, "policy": b"p" * 32}]
    receipt = ledger.send(ledger.f.set_split_policies(items))
    assert ledger.events(receipt, "SplitPolicySet") == items
    assert ledger.f.split_policies(b"b" * 32).call() == b"p" * 32
    changed = [{"bundle": b"b" * 32, "policy": b"q" * 32}]
    ledger.refuses(ledger.f.set_split_policies(changed), "policy already set")
    zero = [{"bundle": b"c" * 32, "policy": ZERO}]
    ledger.refuses(ledger.f.set_split_policies(zero), "policy is zero")


# -- payouts ------------------------------------------------------------------------


def test_accruals_add_to_what_a_household_is_owed(ledger):
    receipt = ledger.send(ledger.f.accrue([pay(b"1" * 32, 1230), pay(b"2" * 32, 70)]))
    assert ledger.events(receipt, "Accrued") == [
        {"id": b"1" * 32, "household": HOUSEHOLD, "amount": 1230, "owed": 1230},
        {"id": b"2" * 32, "household": HOUSEHOLD, "amount": 70, "owed": 1300},
    ]
    assert ledger.f.owed(HOUSEHOLD).call() == 1300
    assert ledger.f.accruals(b"1" * 32).call() == (HOUSEHOLD, 1230)
    assert ledger.f.accounts(HOUSEHOLD).call() == (1300, 0)


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ([pay(b"1" * 32, 0)], "amount is zero"),
        ([pay(b"1" * 32, 5, household=ZERO)], "household is zero"),
        ([pay(b"1" * 32, 5), pay(b"1" * 32, 5)], "accrual exists"),
    ],
)
def test_bad_accruals_revert(ledger, items, reason):
    ledger.refuses(ledger.f.accrue(items), reason)
    assert ledger.f.owed(HOUSEHOLD).call() == 0


def test_settlements_never_exceed_what_is_owed(ledger):
    ledger.send(ledger.f.accrue([pay(b"1" * 32, 1000)]))
    receipt = ledger.send(ledger.f.settle([pay(b"s1" + b"\x00" * 30, 600)]))
    assert ledger.events(receipt, "Settled") == [
        {"id": b"s1" + b"\x00" * 30, "household": HOUSEHOLD, "amount": 600, "owed": 400}
    ]
    ledger.refuses(ledger.f.settle([pay(b"s2" + b"\x00" * 30, 401)]), "exceeds owed")
    ledger.refuses(
        ledger.f.settle([pay(b"s2" + b"\x00" * 30, 300), pay(b"s3" + b"\x00" * 30, 101)]),
        "exceeds owed",
    )
    ledger.send(ledger.f.settle([pay(b"s2" + b"\x00" * 30, 400)]), ledger.bureau)
    assert ledger.f.owed(HOUSEHOLD).call() == 0
    assert ledger.f.accounts(HOUSEHOLD).call() == (1000, 1000)
    ledger.refuses(ledger.f.settle([pay(b"s4" + b"\x00" * 30, 1)]), "exceeds owed")
    ledger.refuses(ledger.f.settle([pay(b"s5" + b"\x00" * 30, 1, b"N" * 32)]), "exceeds owed")


def test_a_settlement_is_recorded_once(ledger):
    ledger.send(ledger.f.accrue([pay(b"1" * 32, 1000)]))
    ledger.send(ledger.f.settle([pay(b"s" * 32, 100)]))
    ledger.refuses(ledger.f.settle([pay(b"s" * 32, 100)]), "settlement exists")
    ledger.refuses(ledger.f.settle([pay(b"t" * 32, 0)]), "amount is zero")
    assert ledger.f.settlements(b"s" * 32).call() == (HOUSEHOLD, 100, False)


def test_the_bureau_confirms_settlements(ledger):
    ledger.send(ledger.f.accrue([pay(b"1" * 32, 1000)]))
    ledger.send(ledger.f.settle([pay(b"s" * 32, 100)]))
    ledger.refuses(ledger.f.confirm_settlements([b"s" * 32]), "missing role")
    ledger.refuses(ledger.f.confirm_settlements([b"x" * 32]), "no such settlement", ledger.bureau)
    receipt = ledger.send(ledger.f.confirm_settlements([b"s" * 32]), ledger.bureau)
    assert ledger.events(receipt, "SettlementConfirmed") == [
        {"id": b"s" * 32, "household": HOUSEHOLD, "bureau": ledger.bureau}
    ]
    assert ledger.f.settlements(b"s" * 32).call() == (HOUSEHOLD, 100, True)
    ledger.refuses(ledger.f.confirm_settlements([b"s" * 32]), "already confirmed", ledger.bureau)


# -- who may write ------------------------------------------------------------------

WRITES = {
    "anchor": [anchor()],
    "issue": [issue(1, 1)],
    "retire": [retire(1, 1)],
    "set_split_policies": [{"bundle": b"b" * 32, "policy": b"p" * 32}],
    "accrue": [pay(b"1" * 32, 1)],
}


@pytest.mark.parametrize("function", sorted(WRITES))
def test_registrar_writes_need_the_registrar_role(ledger, function):
    call = getattr(ledger.f, function)(WRITES[function])
    for sender in (ledger.stranger, ledger.bureau, ledger.admin):
        ledger.refuses(call, "missing role", sender)


def test_settlements_need_the_registrar_or_bureau_role(ledger):
    ledger.send(ledger.f.accrue([pay(b"1" * 32, 10)]))
    ledger.refuses(ledger.f.settle([pay(b"s" * 32, 1)]), "missing role", ledger.stranger)
    ledger.refuses(ledger.f.settle([pay(b"s" * 32, 1)]), "missing role", ledger.admin)


def test_a_revoked_registrar_can_no_longer_write(ledger):
    ledger.send(ledger.f.revoke_role(ledger.registrar, REGISTRAR), ledger.admin)
    ledger.refuses(ledger.f.anchor([anchor()]), "missing role")
