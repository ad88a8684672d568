# pragma version ~=0.4.3
"""
@title Sipang ledger
@notice The public record behind Sipang's carbon credits and farmers' payouts: anchored
        Merkle roots, tonne issuance by serial range, retirements, each bundle's split
        policy, and what every household (known only by a salted hash) was owed and paid.
        Only hashes and integer amounts (grams, fen) are stored: no names, phones or banks.
@dev Roles: the owner grants and revokes admins; admins grant and revoke registrars
     (the platform's key) and bureaus (the county agriculture bureau). Every write
     reverts as a whole, so a batch is all or nothing.
"""

MAX_BATCH: constant(uint256) = 128
# A retired range (or a buffer range) may span at most this many 256-tonne words
# (~ 32,000 tonnes).
MAX_WORDS: constant(uint256) = 128

ROLE_ADMIN: constant(uint256) = 1
ROLE_REGISTRAR: constant(uint256) = 2
ROLE_BUREAU: constant(uint256) = 4
ALL_ROLES: constant(uint256) = 7


struct AnchorItem:
    kind: uint8
    reference: bytes32
    root: bytes32


struct IssueItem:
    lot: bytes32
    first: uint256
    count: uint256
    buffer: bool
    details: bytes32


struct RetireItem:
    lot: bytes32
    first: uint256
    count: uint256
    certificate: bytes32


struct PolicyItem:
    bundle: bytes32
    policy: bytes32


struct PayItem:
    id: bytes32
    household: bytes32
    amount: uint256


struct Issuance:
    count: uint256
    buffer: bool
    details: bytes32


struct Retirement:
    count: uint256
    certificate: bytes32


struct Accrual:
    household: bytes32
    amount: uint256


struct Settlement:
    household: bytes32
    amount: uint256
    confirmed: bool


struct Account:
    accrued: uint256
    settled: uint256


event OwnershipTransferred:
    previous: indexed(address)
    owner: indexed(address)


event RoleGranted:
    account: indexed(address)
    role: uint256
    sender: indexed(address)


event RoleRevoked:
    account: indexed(address)
    role: uint256
    sender: indexed(address)


event Anchored:
    kind: indexed(uint8)
    reference: indexed(bytes32)
    root: bytes32


event Issued:
    lot: indexed(bytes32)
    first: uint256
    count: uint256
    buffer: bool
    details: bytes32


event Retired:
    lot: indexed(bytes32)
    first: uint256
    count: uint256
    certificate: indexed(bytes32)


event SplitPolicySet:
    bundle: indexed(bytes32)
    policy: bytes32


event Accrued:
    id: indexed(bytes32)
    household: indexed(bytes32)
    amount: uint256
    owed: uint256


event Settled:
    id: indexed(bytes32)
    household: indexed(bytes32)
    amount: uint256
    owed: uint256


event SettlementConfirmed:
    id: indexed(bytes32)
    household: indexed(bytes32)
    bureau: indexed(address)


owner: public(address)
roles: public(HashMap[address, uint256])

anchors: public(HashMap[uint8, HashMap[bytes32, bytes32]])
# Tonnes issued in each lot (a serial prefix); the next range starts at issued + 1.
issued: public(HashMap[bytes32, uint256])
issuances: public(HashMap[bytes32, HashMap[uint256, Issuance]])
retirements: public(HashMap[bytes32, HashMap[uint256, Retirement]])
# One bit per tonne, 256 tonnes per word: words[lot][seq // 256] bit seq % 256.
retired_words: public(HashMap[bytes32, HashMap[uint256, uint256]])
buffer_words: public(HashMap[bytes32, HashMap[uint256, uint256]])
split_policies: public(HashMap[bytes32, bytes32])
accruals: public(HashMap[bytes32, Accrual])
settlements: public(HashMap[bytes32, Settlement])
accounts: public(HashMap[bytes32, Account])


@deploy
def __init__():
    self.owner = msg.sender
    self.roles[msg.sender] = ROLE_ADMIN | ROLE_REGISTRAR
    log OwnershipTransferred(previous=empty(address), owner=msg.sender)
    log RoleGranted(account=msg.sender, role=ROLE_ADMIN | ROLE_REGISTRAR, sender=msg.sender)


@internal
@view
def _require(role: uint256):
    assert self.roles[msg.sender] & role != 0, "missing role"


@view
@external
def has_role(account: address, role: uint256) -> bool:
    return self.roles[account] & role == role


@view
@external
def owed(household: bytes32) -> uint256:
    account: Account = self.accounts[household]
    return account.accrued - account.settled


@view
@external
def is_retired(lot: bytes32, seq: uint256) -> bool:
    return (self.retired_words[lot][seq // 256] >> (seq % 256)) & 1 == 1


@view
@external
def is_buffer(lot: bytes32, seq: uint256) -> bool:
    return (self.buffer_words[lot][seq // 256] >> (seq % 256)) & 1 == 1


@internal
@pure
def _words(first: uint256, count: uint256) -> (uint256, uint256):
    """The first and last 256-tonne word a range touches (at most MAX_WORDS of them)."""
    last_word: uint256 = (first + count - 1) // 256
    assert last_word - first // 256 < MAX_WORDS, "range too long"
    return first // 256, last_word


@internal
@pure
def _mask(word: uint256, first: uint256, count: uint256) -> uint256:
    """The bits of `word` that serials first..first+count-1 cover."""
    last: uint256 = first + count - 1
    low: uint256 = 0
    high: uint256 = 255
    if word == first // 256:
        low = first % 256
    if word == last // 256:
        high = last % 256
    return max_value(uint256) >> (255 - high + low) << low


@external
def transfer_ownership(owner: address):
    assert msg.sender == self.owner, "not owner"
    assert owner != empty(address), "zero address"
    log OwnershipTransferred(previous=self.owner, owner=owner)
    self.owner = owner


@external
def grant_role(account: address, role: uint256):
    assert role != 0 and role & ALL_ROLES == role, "unknown role"
    if role & ROLE_ADMIN != 0:
        assert msg.sender == self.owner, "not owner"
    else:
        self._require(ROLE_ADMIN)
    assert account != empty(address), "zero address"
    self.roles[account] |= role
    log RoleGranted(account=account, role=role, sender=msg.sender)


@external
def revoke_role(account: address, role: uint256):
    assert role != 0 and role & ALL_ROLES == role, "unknown role"
    if role & ROLE_ADMIN != 0:
        assert msg.sender == self.owner, "not owner"
    else:
        self._require(ROLE_ADMIN)
    self.roles[account] &= ~role
    log RoleRevoked(account=account, role=role, sender=msg.sender)


@external
def anchor(items: DynArray[AnchorItem, MAX_BATCH]):
    """Record Merkle roots; a (kind, reference) is anchored once."""
    self._require(ROLE_REGISTRAR)
    for item: AnchorItem in items:
        assert item.kind != 0, "kind is zero"
        assert item.root != empty(bytes32), "root is zero"
        assert self.anchors[item.kind][item.reference] == empty(bytes32), "already anchored"
        self.anchors[item.kind][item.reference] = item.root
        log Anchored(kind=item.kind, reference=item.reference, root=item.root)


@external
def issue(items: DynArray[IssueItem, MAX_BATCH]):
    """Issue serial ranges; each lot's ranges are contiguous, so they can never overlap."""
    self._require(ROLE_REGISTRAR)
    for item: IssueItem in items:
        assert item.count != 0, "empty range"
        assert item.first == self.issued[item.lot] + 1, "range overlaps or leaves a gap"
        self.issued[item.lot] = item.first + item.count - 1
        if item.buffer:
            first_word: uint256 = 0
            last_word: uint256 = 0
            first_word, last_word = self._words(item.first, item.count)
            for word: uint256 in range(first_word, last_word + 1, bound=MAX_WORDS):
                self.buffer_words[item.lot][word] |= self._mask(word, item.first, item.count)
        self.issuances[item.lot][item.first] = Issuance(
            count=item.count, buffer=item.buffer, details=item.details
        )
        log Issued(
            lot=item.lot,
            first=item.first,
            count=item.count,
            buffer=item.buffer,
            details=item.details,
        )


@internal
def _retire_range(lot: bytes32, first: uint256, count: uint256):
    first_word: uint256 = 0
    last_word: uint256 = 0
    first_word, last_word = self._words(first, count)
    for word: uint256 in range(first_word, last_word + 1, bound=MAX_WORDS):
        mask: uint256 = self._mask(word, first, count)
        assert self.buffer_words[lot][word] & mask == 0, "buffer tonnes cannot be retired"
        bits: uint256 = self.retired_words[lot][word]
        assert bits & mask == 0, "already retired"
        self.retired_words[lot][word] = bits | mask


@external
def retire(items: DynArray[RetireItem, MAX_BATCH]):
    """Retire issued serial ranges for certificates; a serial is retired at most once."""
    self._require(ROLE_REGISTRAR)
    for item: RetireItem in items:
        assert item.count != 0, "empty range"
        assert item.certificate != empty(bytes32), "certificate is zero"
        last: uint256 = item.first + item.count - 1
        assert item.first >= 1 and last <= self.issued[item.lot], "not issued"
        self._retire_range(item.lot, item.first, item.count)
        self.retirements[item.lot][item.first] = Retirement(
            count=item.count, certificate=item.certificate
        )
        log Retired(
            lot=item.lot, first=item.first, count=item.count, certificate=item.certificate
        )


@external
def set_split_policies(items: DynArray[PolicyItem, MAX_BATCH]):
    """Fix each bundle's split policy hash; it can never change (a new rule is a new bundle)."""
    self._require(ROLE_REGISTRAR)
    for item: PolicyItem in items:
        assert item.policy != empty(bytes32), "policy is zero"
        assert self.split_policies[item.bundle] == empty(bytes32), "policy already set"
        self.split_policies[item.bundle] = item.policy
        log SplitPolicySet(bundle=item.bundle, policy=item.policy)


@external
def accrue(items: DynArray[PayItem, MAX_BATCH]):
    """Add what each household is owed, once per accrual id."""
    self._require(ROLE_REGISTRAR)
    for item: PayItem in items:
        assert item.amount != 0, "amount is zero"
        assert item.household != empty(bytes32), "household is zero"
        assert self.accruals[item.id].amount == 0, "accrual exists"
        self.accruals[item.id] = Accrual(household=item.household, amount=item.amount)
        account: Account = self.accounts[item.household]
        account.accrued += item.amount
        self.accounts[item.household] = account
        log Accrued(
            id=item.id,
            household=item.household,
            amount=item.amount,
            owed=account.accrued - account.settled,
        )


@external
def settle(items: DynArray[PayItem, MAX_BATCH]):
    """Record transfers to households, once per settlement id, never more than is owed."""
    self._require(ROLE_REGISTRAR | ROLE_BUREAU)
    for item: PayItem in items:
        assert item.amount != 0, "amount is zero"
        assert self.settlements[item.id].amount == 0, "settlement exists"
        account: Account = self.accounts[item.household]
        assert item.amount <= account.accrued - account.settled, "exceeds owed"
        self.settlements[item.id] = Settlement(
            household=item.household, amount=item.amount, confirmed=False
        )
        account.settled += item.amount
        self.accounts[item.household] = account
        log Settled(
            id=item.id,
            household=item.household,
            amount=item.amount,
            owed=account.accrued - account.settled,
        )


@external
def confirm_settlements(ids: DynArray[bytes32, MAX_BATCH]):
    """The bureau confirms that recorded settlements arrived."""
    self._require(ROLE_BUREAU)
    for id: bytes32 in ids:
        settlement: Settlement = self.settlements[id]
        assert settlement.amount != 0, "no such settlement"
        assert not settlement.confirmed, "already confirmed"
        self.settlements[id].confirmed = True
        log SettlementConfirmed(id=id, household=settlement.household, bureau=msg.sender)
