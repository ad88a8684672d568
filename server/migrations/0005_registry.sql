-- The registry: verification of a credited period, issuance into 1-tonne serials with a
-- buffer, bundles with fixed rules and split policy, orders, payments, certificates.
-- Ledger rules live here as constraints and triggers, so no code path can break them:
-- a serial exists once, moves only along the allowed status transitions, is retired at
-- most once, and is never deleted.

CREATE TABLE verifications (
    id INTEGER PRIMARY KEY,
    calculation_id INTEGER NOT NULL UNIQUE REFERENCES credit_calculations(id),
    village_id INTEGER NOT NULL REFERENCES villages(id),
    seed TEXT NOT NULL CHECK (length(seed) = 32),
    population INTEGER NOT NULL CHECK (population >= 0),
    sample_size INTEGER NOT NULL CHECK (sample_size BETWEEN 0 AND population),
    verifier_id INTEGER NOT NULL REFERENCES users(id),
    assigned_by INTEGER REFERENCES users(id),
    assigned_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'assigned'
        CHECK (status IN ('assigned', 'passed', 'partial', 'failed')),
    passed_trees INTEGER,
    failed_trees INTEGER,
    -- the share (parts per million) of the calculation's tonnes that may be issued
    scale_ppm INTEGER CHECK (scale_ppm BETWEEN 0 AND 1000000),
    decided_at TEXT,
    decision_note TEXT,
    report_pdf BLOB,
    report_sha256 TEXT CHECK (report_sha256 IS NULL OR length(report_sha256) = 64),
    -- set by the chain outbox once the report hash is anchored (the ledger issue)
    report_anchor_tx TEXT,
    CHECK ((status = 'assigned') = (decided_at IS NULL)),
    CHECK ((status = 'assigned') = (report_sha256 IS NULL))
);
CREATE INDEX verifications_verifier ON verifications(verifier_id, status);

CREATE TABLE verification_samples (
    verification_id INTEGER NOT NULL REFERENCES verifications(id),
    tree_id TEXT NOT NULL REFERENCES trees(id),
    claimed_measurement_id TEXT NOT NULL REFERENCES measurements(id),
    PRIMARY KEY (verification_id, tree_id)
);

CREATE TABLE remeasurements (
    id INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL UNIQUE CHECK (length(client_id) BETWEEN 16 AND 40),
    verification_id INTEGER NOT NULL,
    tree_id TEXT NOT NULL,
    dbh_mm INTEGER NOT NULL CHECK (dbh_mm BETWEEN 1 AND 5000),
    species_id TEXT NOT NULL REFERENCES species(id),
    measured_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    verifier_id INTEGER NOT NULL REFERENCES users(id),
    within_tolerance INTEGER NOT NULL CHECK (within_tolerance IN (0, 1)),
    reason TEXT,
    UNIQUE (verification_id, tree_id),
    FOREIGN KEY (verification_id, tree_id)
        REFERENCES verification_samples(verification_id, tree_id)
);

CREATE TABLE bundles (
    id INTEGER PRIMARY KEY,
    county_id INTEGER NOT NULL REFERENCES counties(id),
    seq INTEGER NOT NULL CHECK (seq BETWEEN 1 AND 9999),
    version INTEGER NOT NULL CHECK (version >= 1),
    previous_id INTEGER REFERENCES bundles(id),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description TEXT,
    vintage_from INTEGER NOT NULL,
    vintage_to INTEGER NOT NULL CHECK (vintage_to >= vintage_from),
    methods TEXT NOT NULL,
    min_households INTEGER NOT NULL CHECK (min_households >= 1),
    max_household_share_pct INTEGER NOT NULL CHECK (max_household_share_pct BETWEEN 1 AND 100),
    price_fen INTEGER NOT NULL CHECK (price_fen > 0),
    commission_bp INTEGER NOT NULL CHECK (commission_bp BETWEEN 0 AND 10000),
    individual_commission_bp INTEGER NOT NULL CHECK (individual_commission_bp BETWEEN 0 AND 10000),
    households_pct INTEGER NOT NULL CHECK (households_pct >= 60),
    collective_pct INTEGER NOT NULL CHECK (collective_pct >= 0),
    maintenance_pct INTEGER NOT NULL CHECK (maintenance_pct >= 0),
    rules_sha256 TEXT NOT NULL CHECK (length(rules_sha256) = 64),
    status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'on_sale', 'superseded')),
    published_at TEXT,
    created_by INTEGER REFERENCES users(id),
    created_at TEXT NOT NULL,
    UNIQUE (county_id, seq, version),
    CHECK (households_pct + collective_pct + maintenance_pct = 100)
);

-- Rules are fixed at creation: only the status and publication time ever change.
CREATE TRIGGER bundles_rules_fixed BEFORE UPDATE ON bundles
WHEN NEW.rules_sha256 != OLD.rules_sha256 OR NEW.methods != OLD.methods
  OR NEW.vintage_from != OLD.vintage_from OR NEW.vintage_to != OLD.vintage_to
  OR NEW.min_households != OLD.min_households OR NEW.price_fen != OLD.price_fen
  OR NEW.max_household_share_pct != OLD.max_household_share_pct
  OR NEW.households_pct != OLD.households_pct OR NEW.commission_bp != OLD.commission_bp
  OR NEW.county_id != OLD.county_id OR NEW.seq != OLD.seq OR NEW.version != OLD.version
BEGIN
    SELECT RAISE(ABORT, 'bundle rules are fixed; make a new version');
END;

CREATE TABLE issuances (
    id INTEGER PRIMARY KEY,
    calculation_id INTEGER NOT NULL UNIQUE REFERENCES credit_calculations(id),
    verification_id INTEGER NOT NULL UNIQUE REFERENCES verifications(id),
    bundle_id INTEGER NOT NULL REFERENCES bundles(id),
    vintage INTEGER NOT NULL,
    tonnes INTEGER NOT NULL CHECK (tonnes >= 0),
    buffer_tonnes INTEGER NOT NULL CHECK (buffer_tonnes BETWEEN 0 AND tonnes),
    first_serial TEXT,
    last_serial TEXT,
    created_by INTEGER REFERENCES users(id),
    created_at TEXT NOT NULL
);

CREATE TABLE issuance_households (
    issuance_id INTEGER NOT NULL REFERENCES issuances(id),
    household_id INTEGER NOT NULL REFERENCES households(id),
    grams INTEGER NOT NULL CHECK (grams >= 0),
    PRIMARY KEY (issuance_id, household_id)
);

CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE CHECK (length(public_id) >= 20),
    request_id TEXT NOT NULL UNIQUE CHECK (length(request_id) BETWEEN 8 AND 64),
    request_sha256 TEXT NOT NULL,
    bundle_id INTEGER NOT NULL REFERENCES bundles(id),
    tonnes INTEGER NOT NULL CHECK (tonnes BETWEEN 1 AND 100000),
    buyer_kind TEXT NOT NULL CHECK (buyer_kind IN ('individual', 'enterprise')),
    buyer_user_id INTEGER REFERENCES users(id),
    beneficiary TEXT CHECK (beneficiary IS NULL OR length(beneficiary) <= 60),
    reason TEXT CHECK (reason IS NULL OR length(reason) <= 200),
    price_fen INTEGER NOT NULL CHECK (price_fen > 0),
    amount_fen INTEGER NOT NULL CHECK (amount_fen = price_fen * tonnes),
    commission_bp INTEGER NOT NULL,
    farmers_fen INTEGER NOT NULL CHECK (farmers_fen BETWEEN 0 AND amount_fen),
    status TEXT NOT NULL DEFAULT 'reserved'
        CHECK (status IN ('reserved', 'expired', 'held', 'retired')),
    expires_at TEXT NOT NULL,
    paid_at TEXT,
    payment_method TEXT,
    payment_reference TEXT,
    confirmed_by TEXT,
    created_at TEXT NOT NULL,
    CHECK (buyer_kind = 'individual' OR buyer_user_id IS NOT NULL),
    CHECK ((paid_at IS NULL) = (payment_reference IS NULL)),
    CHECK (status IN ('reserved', 'expired') OR paid_at IS NOT NULL)
);
CREATE INDEX orders_reserved ON orders(status, expires_at);
CREATE UNIQUE INDEX orders_payment_reference ON orders(payment_method, payment_reference)
    WHERE payment_reference IS NOT NULL;

CREATE TABLE certificates (
    id TEXT PRIMARY KEY
        CHECK (id GLOB 'SPC-[0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9][0-9][0-9]'),
    year INTEGER NOT NULL,
    seq INTEGER NOT NULL CHECK (seq BETWEEN 1 AND 999999),
    order_id INTEGER NOT NULL REFERENCES orders(id),
    request_id TEXT UNIQUE,
    bundle_id INTEGER NOT NULL REFERENCES bundles(id),
    tonnes INTEGER NOT NULL CHECK (tonnes >= 1),
    serials TEXT NOT NULL,
    vintages TEXT NOT NULL,
    villages TEXT NOT NULL,
    beneficiary TEXT,
    reason TEXT,
    retired_on TEXT NOT NULL,
    price_fen INTEGER NOT NULL,
    amount_fen INTEGER NOT NULL,
    farmers_fen INTEGER NOT NULL,
    document TEXT NOT NULL,
    sha256 TEXT NOT NULL CHECK (length(sha256) = 64),
    -- set by the chain outbox once the certificate hash is on the ledger (the ledger issue)
    chain_tx TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (year, seq)
);

-- One row per tonne. `series` is the serial without its tonne number.
CREATE TABLE tonnes (
    serial TEXT PRIMARY KEY
        CHECK (serial GLOB 'SP-[0-9][0-9][0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9][0-9][0-9]'),
    series TEXT NOT NULL,
    seq INTEGER NOT NULL CHECK (seq BETWEEN 1 AND 999999),
    bundle_id INTEGER NOT NULL REFERENCES bundles(id),
    vintage INTEGER NOT NULL,
    issuance_id INTEGER NOT NULL REFERENCES issuances(id),
    buffer INTEGER NOT NULL CHECK (buffer IN (0, 1)),
    status TEXT NOT NULL
        CHECK (status IN ('available', 'reserved', 'held', 'retired', 'buffer', 'cancelled')),
    order_id INTEGER REFERENCES orders(id),
    certificate_id TEXT REFERENCES certificates(id),
    UNIQUE (series, seq),
    CHECK (serial = series || '-' || printf('%06d', seq)),
    CHECK (buffer = 0 OR status IN ('buffer', 'cancelled')),
    CHECK (buffer = 1 OR status != 'buffer'),
    CHECK ((status IN ('reserved', 'held', 'retired')) = (order_id IS NOT NULL)),
    CHECK ((status = 'retired') = (certificate_id IS NOT NULL))
);
CREATE INDEX tonnes_sale_order ON tonnes(bundle_id, status, vintage, seq);
CREATE INDEX tonnes_order ON tonnes(order_id);
CREATE INDEX tonnes_certificate ON tonnes(certificate_id);

CREATE TRIGGER tonnes_identity_fixed BEFORE UPDATE ON tonnes
WHEN NEW.serial != OLD.serial OR NEW.series != OLD.series OR NEW.seq != OLD.seq
  OR NEW.bundle_id != OLD.bundle_id OR NEW.vintage != OLD.vintage
  OR NEW.issuance_id != OLD.issuance_id OR NEW.buffer != OLD.buffer
BEGIN
    SELECT RAISE(ABORT, 'a serial never changes');
END;

CREATE TRIGGER tonnes_status_moves BEFORE UPDATE OF status ON tonnes
WHEN NEW.status != OLD.status AND OLD.status || '>' || NEW.status NOT IN (
    'available>reserved', 'reserved>available', 'reserved>held', 'reserved>retired',
    'held>retired', 'buffer>cancelled', 'available>cancelled')
BEGIN
    SELECT RAISE(ABORT, 'this serial cannot move to that status');
END;

CREATE TRIGGER tonnes_final BEFORE UPDATE ON tonnes
WHEN OLD.status IN ('retired', 'cancelled')
BEGIN
    SELECT RAISE(ABORT, 'a retired or cancelled serial never changes');
END;

CREATE TRIGGER tonnes_never_deleted BEFORE DELETE ON tonnes
BEGIN
    SELECT RAISE(ABORT, 'serials are never deleted');
END;

-- A serial is retired at most once: the primary key refuses a second retirement.
CREATE TABLE retirements (
    serial TEXT PRIMARY KEY REFERENCES tonnes(serial),
    certificate_id TEXT NOT NULL REFERENCES certificates(id),
    retired_at TEXT NOT NULL
);

CREATE TRIGGER retirements_no_update BEFORE UPDATE ON retirements
BEGIN
    SELECT RAISE(ABORT, 'retirements are final');
END;

CREATE TRIGGER retirements_no_delete BEFORE DELETE ON retirements
BEGIN
    SELECT RAISE(ABORT, 'retirements are final');
END;

CREATE TABLE reversals (
    id INTEGER PRIMARY KEY,
    issuance_id INTEGER NOT NULL REFERENCES issuances(id),
    grams INTEGER NOT NULL CHECK (grams >= 0),
    tonnes INTEGER NOT NULL CHECK (tonnes >= 0),
    from_buffer INTEGER NOT NULL,
    from_available INTEGER NOT NULL,
    shortfall INTEGER NOT NULL CHECK (shortfall >= 0),
    created_by INTEGER REFERENCES users(id),
    created_at TEXT NOT NULL,
    CHECK (from_buffer + from_available + shortfall = tonnes)
);

CREATE TABLE reversal_trees (
    tree_id TEXT PRIMARY KEY REFERENCES trees(id),
    reversal_id INTEGER NOT NULL REFERENCES reversals(id),
    grams INTEGER NOT NULL
);

-- Payment providers' webhook events, kept so a replayed event changes nothing.
CREATE TABLE payment_events (
    provider TEXT NOT NULL,
    event_id TEXT NOT NULL,
    order_public_id TEXT,
    amount_fen INTEGER,
    outcome TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (provider, event_id)
);
