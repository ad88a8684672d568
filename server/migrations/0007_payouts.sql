-- Payouts (DESIGN.md §8): each paid order split by its bundle's policy, the households'
-- share accrued pro rata to their grams in the bundle, and T+1 settlement batches.
-- Money is integer fen. Accruals are append-only; a settlement can never exceed what the
-- household is owed (a trigger here, and the ledger contract again on chain).

-- One row per paid order: how its amount was split. The four parts add up to the amount.
CREATE TABLE sale_splits (
    order_id INTEGER PRIMARY KEY REFERENCES orders(id),
    bundle_id INTEGER NOT NULL REFERENCES bundles(id),
    county_id INTEGER NOT NULL REFERENCES counties(id),
    buyer_kind TEXT NOT NULL CHECK (buyer_kind IN ('individual', 'enterprise')),
    amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
    commission_bp INTEGER NOT NULL CHECK (commission_bp BETWEEN 0 AND 10000),
    commission_fen INTEGER NOT NULL CHECK (commission_fen >= 0),
    households_fen INTEGER NOT NULL CHECK (households_fen >= 0),
    collective_fen INTEGER NOT NULL CHECK (collective_fen >= 0),
    maintenance_fen INTEGER NOT NULL CHECK (maintenance_fen >= 0),
    policy_sha256 TEXT NOT NULL CHECK (length(policy_sha256) = 64),
    paid_on TEXT NOT NULL,  -- Beijing date of the payment (the T of T+1)
    created_at TEXT NOT NULL,
    CHECK (commission_fen + households_fen + collective_fen + maintenance_fen = amount_fen)
);
CREATE INDEX sale_splits_county ON sale_splits (county_id, paid_on);

-- The households' share of one sale, one row per household with grams in the bundle and
-- a non-zero share; the rows of an order add up to its sale_splits.households_fen.
CREATE TABLE accruals (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES sale_splits(order_id),
    household_id INTEGER NOT NULL REFERENCES households(id),
    village_id INTEGER NOT NULL REFERENCES villages(id),
    county_id INTEGER NOT NULL REFERENCES counties(id),
    grams INTEGER NOT NULL CHECK (grams > 0),
    amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
    household_hash TEXT NOT NULL CHECK (length(household_hash) = 66),
    accrued_on TEXT NOT NULL,  -- Beijing date (the T of T+1)
    created_at TEXT NOT NULL,
    UNIQUE (order_id, household_id)
);
CREATE INDEX accruals_household ON accruals (household_id, accrued_on);
CREATE INDEX accruals_village ON accruals (village_id, accrued_on);

CREATE TRIGGER accruals_no_update BEFORE UPDATE ON accruals
BEGIN
    SELECT RAISE(ABORT, 'accruals are append-only');
END;
CREATE TRIGGER accruals_no_delete BEFORE DELETE ON accruals
BEGIN
    SELECT RAISE(ABORT, 'accruals are append-only');
END;

-- The village collective's share of one sale, per village, pro rata to the village's
-- grams in the bundle; the rows of an order add up to its sale_splits.collective_fen.
CREATE TABLE village_accruals (
    order_id INTEGER NOT NULL REFERENCES sale_splits(order_id),
    village_id INTEGER NOT NULL REFERENCES villages(id),
    grams INTEGER NOT NULL CHECK (grams > 0),
    collective_fen INTEGER NOT NULL CHECK (collective_fen >= 0),
    PRIMARY KEY (order_id, village_id)
);

-- A bank's return file, stored by hash: the same file again changes nothing.
CREATE TABLE bank_return_files (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64),
    filename TEXT NOT NULL,
    rows INTEGER NOT NULL,
    paid INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    ignored INTEGER NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at TEXT NOT NULL
);

-- The T+1 batch of one day: every household owed at least the minimum transfer for what
-- accrued before `settle_on` (sales of settle_on − 1 and earlier).
CREATE TABLE settlement_batches (
    id INTEGER PRIMARY KEY,
    settle_on TEXT NOT NULL UNIQUE
        CHECK (settle_on GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    min_transfer_fen INTEGER NOT NULL CHECK (min_transfer_fen >= 1),
    households INTEGER NOT NULL CHECK (households >= 0),
    total_fen INTEGER NOT NULL CHECK (total_fen >= 0),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- One transfer to one household. pending → paid (transfer reference recorded; written to
-- the chain) or pending → failed (the amount is owed again and joins the next batch).
CREATE TABLE settlements (
    id INTEGER PRIMARY KEY,
    batch_id INTEGER NOT NULL REFERENCES settlement_batches(id),
    household_id INTEGER NOT NULL REFERENCES households(id),
    village_id INTEGER NOT NULL REFERENCES villages(id),
    county_id INTEGER NOT NULL REFERENCES counties(id),
    amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
    household_hash TEXT NOT NULL CHECK (length(household_hash) = 66),
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid', 'failed')),
    transfer_reference TEXT CHECK (transfer_reference IS NULL OR length(transfer_reference) <= 64),
    failure_reason TEXT CHECK (failure_reason IS NULL OR length(failure_reason) <= 200),
    return_file_id INTEGER REFERENCES bank_return_files(id),
    recorded_by TEXT,
    recorded_at TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (batch_id, household_id),
    CHECK ((status = 'paid') = (transfer_reference IS NOT NULL)),
    CHECK ((status = 'pending') = (recorded_at IS NULL))
);
CREATE INDEX settlements_household ON settlements (household_id, status);
CREATE INDEX settlements_village ON settlements (village_id, status);
CREATE UNIQUE INDEX settlements_reference ON settlements (transfer_reference)
    WHERE transfer_reference IS NOT NULL;

CREATE TRIGGER settlements_not_above_owed BEFORE INSERT ON settlements
WHEN NEW.amount_fen > (SELECT coalesce(sum(amount_fen), 0) FROM accruals
                       WHERE household_id = NEW.household_id)
                    - (SELECT coalesce(sum(amount_fen), 0) FROM settlements
                       WHERE household_id = NEW.household_id AND status IN ('pending', 'paid'))
BEGIN
    SELECT RAISE(ABORT, 'a settlement cannot exceed what the household is owed');
END;

CREATE TRIGGER settlements_status_moves BEFORE UPDATE ON settlements
WHEN OLD.status != 'pending' OR NEW.amount_fen != OLD.amount_fen
  OR NEW.household_id != OLD.household_id OR NEW.batch_id != OLD.batch_id
  OR NEW.household_hash != OLD.household_hash
BEGIN
    SELECT RAISE(ABORT, 'a recorded settlement never changes');
END;

CREATE TRIGGER settlements_never_deleted BEFORE DELETE ON settlements
BEGIN
    SELECT RAISE(ABORT, 'settlements are never deleted');
END;

-- What each household has accrued, has been paid, has in an open batch, and is owed.
CREATE VIEW household_payouts AS
SELECT h.id AS household_id, h.code, h.village_id, v.county_id,
       coalesce(a.accrued_fen, 0) AS accrued_fen,
       coalesce(s.paid_fen, 0) AS paid_fen,
       coalesce(s.pending_fen, 0) AS pending_fen,
       coalesce(a.accrued_fen, 0) - coalesce(s.paid_fen, 0) AS owed_fen,
       a.first_accrued_on, a.last_accrued_on
FROM households h
JOIN villages v ON v.id = h.village_id
LEFT JOIN (SELECT household_id, sum(amount_fen) AS accrued_fen,
                  min(accrued_on) AS first_accrued_on, max(accrued_on) AS last_accrued_on
           FROM accruals GROUP BY household_id) a ON a.household_id = h.id
LEFT JOIN (SELECT household_id, sum(CASE WHEN status = 'paid' THEN amount_fen END) AS paid_fen,
                  sum(CASE WHEN status = 'pending' THEN amount_fen END) AS pending_fen
           FROM settlements GROUP BY household_id) s ON s.household_id = h.id
WHERE a.accrued_fen IS NOT NULL;

-- The registry's chain columns follow the chain outbox: a confirmed report anchor fills
-- verifications.report_anchor_tx, a confirmed retirement run certificates.chain_tx; a row
-- that goes back to pending (a node that lost blocks) empties them again.
CREATE TRIGGER chain_outbox_report_anchor AFTER UPDATE OF state, tx_hash ON chain_outbox
WHEN NEW.kind = 'anchor' AND json_extract(NEW.payload, '$.kind') = 'verification_report'
BEGIN
    UPDATE verifications
       SET report_anchor_tx = CASE WHEN NEW.state = 'confirmed'
                                   THEN coalesce(NEW.tx_hash, 'on chain') END
     WHERE 'verification:' || id = json_extract(NEW.payload, '$.reference');
END;

CREATE TRIGGER chain_outbox_certificate AFTER UPDATE OF state, tx_hash ON chain_outbox
WHEN NEW.kind = 'retire'
BEGIN
    UPDATE certificates
       SET chain_tx = CASE WHEN NEW.state = 'confirmed'
                           THEN coalesce(NEW.tx_hash, 'on chain') END
     WHERE '0x' || sha256 = json_extract(NEW.payload, '$.certificate');
END;
