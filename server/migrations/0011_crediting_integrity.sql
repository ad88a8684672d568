-- Crediting integrity: the registration's own client time; what each tree line credits and
-- why it was capped; losses that cancel buffer tonnes; verification re-measurements of
-- height and outcome with the ratio they give; photo fingerprints for reuse checks.

ALTER TABLE trees ADD COLUMN registered_client_time TEXT;

ALTER TABLE credit_calculations ADD COLUMN void_reason TEXT;
ALTER TABLE credit_calculations ADD COLUMN loss_g INTEGER NOT NULL DEFAULT 0 CHECK (loss_g >= 0);

ALTER TABLE credit_tree_lines ADD COLUMN credited_g INTEGER;
ALTER TABLE credit_tree_lines ADD COLUMN note TEXT;
CREATE INDEX credit_tree_lines_tree ON credit_tree_lines(tree_id, calculation_id);
CREATE INDEX credit_tree_lines_end ON credit_tree_lines(end_measurement_id);
CREATE INDEX credit_tree_lines_start ON credit_tree_lines(start_measurement_id);

-- A household whose period is a net loss carries nothing negative forward: the loss is
-- covered by cancelling buffer tonnes at issuance (loss_g).
CREATE TABLE credit_household_lines_new (
    calculation_id INTEGER NOT NULL REFERENCES credit_calculations(id),
    household_id INTEGER NOT NULL REFERENCES households(id),
    carry_in_g INTEGER NOT NULL,
    gross_g INTEGER NOT NULL,
    deduction_g INTEGER NOT NULL,
    issued_g INTEGER NOT NULL CHECK (issued_g >= 0),
    carry_out_g INTEGER NOT NULL,
    loss_g INTEGER NOT NULL DEFAULT 0 CHECK (loss_g >= 0),
    PRIMARY KEY (calculation_id, household_id),
    CHECK (issued_g + carry_out_g = carry_in_g + gross_g - deduction_g + loss_g)
);
INSERT INTO credit_household_lines_new (calculation_id, household_id, carry_in_g, gross_g,
    deduction_g, issued_g, carry_out_g)
SELECT calculation_id, household_id, carry_in_g, gross_g, deduction_g, issued_g, carry_out_g
FROM credit_household_lines;
DROP TABLE credit_household_lines;
ALTER TABLE credit_household_lines_new RENAME TO credit_household_lines;

-- Blind re-measurement: DBH and height, or what the verifier found instead.
CREATE TABLE remeasurements_new (
    id INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL UNIQUE CHECK (length(client_id) BETWEEN 16 AND 40),
    verification_id INTEGER NOT NULL,
    tree_id TEXT NOT NULL,
    outcome TEXT NOT NULL DEFAULT 'measured'
        CHECK (outcome IN ('measured', 'not_found', 'dead', 'felled')),
    dbh_mm INTEGER CHECK (dbh_mm BETWEEN 1 AND 5000),
    height_cm INTEGER CHECK (height_cm BETWEEN 10 AND 10000),
    species_id TEXT REFERENCES species(id),
    measured_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    verifier_id INTEGER NOT NULL REFERENCES users(id),
    within_tolerance INTEGER NOT NULL CHECK (within_tolerance IN (0, 1)),
    reason TEXT,
    UNIQUE (verification_id, tree_id),
    FOREIGN KEY (verification_id, tree_id)
        REFERENCES verification_samples(verification_id, tree_id),
    CHECK ((outcome = 'measured') = (dbh_mm IS NOT NULL AND species_id IS NOT NULL))
);
INSERT INTO remeasurements_new (id, client_id, verification_id, tree_id, dbh_mm, species_id,
    measured_at, received_at, verifier_id, within_tolerance, reason)
SELECT id, client_id, verification_id, tree_id, dbh_mm, species_id, measured_at, received_at,
    verifier_id, within_tolerance, reason FROM remeasurements;
DROP TABLE remeasurements;
ALTER TABLE remeasurements_new RENAME TO remeasurements;

-- The ratio of verified to claimed growth over the sample, and its lower confidence bound.
ALTER TABLE verifications ADD COLUMN ratio_ppm INTEGER;
ALTER TABLE verifications ADD COLUMN lower_bound_ppm INTEGER;

-- Carbon lost after it was credited (a tree dead or felled, a period's net loss), and the
-- tonnes cancelled for it: per bundle, ceil(lost grams / 1 t) tonnes, buffer first.
CREATE TABLE losses (
    id INTEGER PRIMARY KEY,
    bundle_id INTEGER NOT NULL REFERENCES bundles(id),
    issuance_id INTEGER REFERENCES issuances(id),
    calculation_id INTEGER REFERENCES credit_calculations(id),
    tree_id TEXT REFERENCES trees(id),
    grams INTEGER NOT NULL CHECK (grams > 0),
    reason TEXT NOT NULL CHECK (reason IN ('dead', 'felled', 'net_loss')),
    created_at TEXT NOT NULL
);
CREATE INDEX losses_bundle ON losses(bundle_id);
CREATE INDEX losses_tree ON losses(tree_id);

-- Each call that cancels is one batch per bundle (1, 2, ...), anchored as
-- `cancellation:<bundle id>:<batch>`.
CREATE TABLE loss_cancellations (
    serial TEXT PRIMARY KEY REFERENCES tonnes(serial),
    loss_id INTEGER NOT NULL REFERENCES losses(id),
    bundle_id INTEGER NOT NULL REFERENCES bundles(id),
    batch INTEGER NOT NULL CHECK (batch >= 1),
    from_buffer INTEGER NOT NULL CHECK (from_buffer IN (0, 1)),
    created_at TEXT NOT NULL
);
CREATE INDEX loss_cancellations_bundle ON loss_cancellations(bundle_id, batch);

CREATE TABLE photo_fingerprints (
    sha256 TEXT PRIMARY KEY REFERENCES blobs(sha256),
    dhash INTEGER NOT NULL,
    computed_at TEXT NOT NULL
);

CREATE INDEX measurements_photo ON measurements(photo_sha256);
CREATE INDEX measurements_position ON measurements(latitude, longitude);
