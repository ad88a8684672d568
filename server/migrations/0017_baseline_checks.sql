-- Baseline checks (server/registry/baseline.py): soon after a village's registration census a
-- verifier re-measures a random sample of the registered trees blind. The ratio of the
-- re-measured to the claimed registration stock, and its upper confidence bound, say how far
-- the baselines may have been recorded too small; a first period issues only for trees a
-- passed check covers, less that share of their registration stock.
CREATE TABLE baseline_checks (
    id INTEGER PRIMARY KEY,
    village_id INTEGER NOT NULL REFERENCES villages(id),
    method_version TEXT NOT NULL,
    seed TEXT NOT NULL CHECK (length(seed) = 32),
    population INTEGER NOT NULL CHECK (population > 0),
    sample_size INTEGER NOT NULL CHECK (sample_size BETWEEN 1 AND population),
    verifier_id INTEGER NOT NULL REFERENCES users(id),
    assigned_by INTEGER REFERENCES users(id),
    assigned_at TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'assigned' CHECK (status IN ('assigned', 'passed', 'failed')),
    found_trees INTEGER,
    ratio_ppm INTEGER,
    upper_bound_ppm INTEGER,
    -- the share (ppm) of the claimed registration stock that may have been understated:
    -- max(upper bound - 1, 0); a first period's growth is reduced by it
    excess_ppm INTEGER CHECK (excess_ppm IS NULL OR excess_ppm >= 0),
    decided_at TEXT,
    decision_note TEXT,
    CHECK ((status = 'assigned') = (decided_at IS NULL)),
    CHECK ((status = 'passed') = (excess_ppm IS NOT NULL))
);
CREATE INDEX baseline_checks_village ON baseline_checks(village_id, status);
CREATE INDEX baseline_checks_verifier ON baseline_checks(verifier_id, status);

-- Every tree a check covers (its population), with the registration reading it checked;
-- `sampled` marks the ones drawn for re-measurement.
CREATE TABLE baseline_check_trees (
    check_id INTEGER NOT NULL REFERENCES baseline_checks(id),
    tree_id TEXT NOT NULL REFERENCES trees(id),
    baseline_measurement_id TEXT NOT NULL REFERENCES measurements(id),
    sampled INTEGER NOT NULL CHECK (sampled IN (0, 1)),
    PRIMARY KEY (check_id, tree_id)
);
CREATE INDEX baseline_check_trees_tree ON baseline_check_trees(tree_id);

CREATE TABLE baseline_remeasurements (
    id INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL UNIQUE CHECK (length(client_id) BETWEEN 16 AND 40),
    check_id INTEGER NOT NULL,
    tree_id TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('measured', 'not_found', 'dead', 'felled')),
    dbh_mm INTEGER CHECK (dbh_mm BETWEEN 1 AND 5000),
    height_cm INTEGER CHECK (height_cm BETWEEN 10 AND 10000),
    species_id TEXT REFERENCES species(id),
    measured_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    verifier_id INTEGER NOT NULL REFERENCES users(id),
    within_tolerance INTEGER NOT NULL CHECK (within_tolerance IN (0, 1)),
    reason TEXT,
    UNIQUE (check_id, tree_id),
    FOREIGN KEY (check_id, tree_id) REFERENCES baseline_check_trees(check_id, tree_id),
    CHECK ((outcome = 'measured') = (dbh_mm IS NOT NULL AND species_id IS NOT NULL))
);

-- What an issuance took off its claimed growth for baselines that may have been understated.
ALTER TABLE issuances ADD COLUMN baseline_deduction_g INTEGER NOT NULL DEFAULT 0;
