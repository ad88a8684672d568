-- The carbon methodology's records: parameter sets used, per-measurement estimates,
-- plausibility flags and their review, and credit calculations with every input line.

CREATE TABLE methods (
    version TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64),
    document TEXT NOT NULL,
    registered_at TEXT NOT NULL
);

CREATE TABLE measurement_estimates (
    measurement_id TEXT PRIMARY KEY REFERENCES measurements(id),
    method_version TEXT NOT NULL REFERENCES methods(version),
    route TEXT NOT NULL,
    inputs TEXT NOT NULL,
    agb_g INTEGER NOT NULL,
    bgb_g INTEGER NOT NULL,
    carbon_g INTEGER NOT NULL,
    co2e_g INTEGER NOT NULL CHECK (co2e_g >= 0),
    uncertainty_pct INTEGER NOT NULL,
    estimated_at TEXT NOT NULL
);

CREATE TABLE flags (
    id INTEGER PRIMARY KEY,
    measurement_id TEXT NOT NULL REFERENCES measurements(id),
    tree_id TEXT NOT NULL REFERENCES trees(id),
    village_id INTEGER NOT NULL REFERENCES villages(id),
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    decision TEXT CHECK (decision IN ('accepted', 'rejected')),
    reviewed_by INTEGER REFERENCES users(id),
    reviewed_at TEXT,
    review_note TEXT,
    CHECK ((decision IS NULL) = (reviewed_at IS NULL))
);
CREATE INDEX flags_village ON flags(village_id, decision);
CREATE INDEX flags_measurement ON flags(measurement_id);

CREATE TABLE credit_calculations (
    id INTEGER PRIMARY KEY,
    village_id INTEGER NOT NULL REFERENCES villages(id),
    period_start TEXT NOT NULL,
    period_end TEXT NOT NULL CHECK (period_end > period_start),
    method_version TEXT NOT NULL REFERENCES methods(version),
    buffer_pct INTEGER NOT NULL CHECK (buffer_pct BETWEEN 0 AND 100),
    uncertainty_threshold_pct INTEGER NOT NULL,
    gross_g INTEGER NOT NULL,
    deduction_g INTEGER NOT NULL CHECK (deduction_g >= 0),
    tonnes INTEGER NOT NULL CHECK (tonnes >= 0),
    buffer_tonnes INTEGER NOT NULL CHECK (buffer_tonnes BETWEEN 0 AND tonnes),
    open_flags INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'issued', 'void')),
    created_by INTEGER REFERENCES users(id),
    created_at TEXT NOT NULL
);

CREATE TABLE credit_household_lines (
    calculation_id INTEGER NOT NULL REFERENCES credit_calculations(id),
    household_id INTEGER NOT NULL REFERENCES households(id),
    carry_in_g INTEGER NOT NULL,
    gross_g INTEGER NOT NULL,
    deduction_g INTEGER NOT NULL,
    issued_g INTEGER NOT NULL CHECK (issued_g >= 0),
    carry_out_g INTEGER NOT NULL,
    PRIMARY KEY (calculation_id, household_id),
    CHECK (issued_g + carry_out_g = carry_in_g + gross_g - deduction_g)
);

CREATE TABLE credit_tree_lines (
    calculation_id INTEGER NOT NULL REFERENCES credit_calculations(id),
    tree_id TEXT NOT NULL REFERENCES trees(id),
    start_measurement_id TEXT NOT NULL REFERENCES measurements(id),
    end_measurement_id TEXT REFERENCES measurements(id),
    stock_start_g INTEGER NOT NULL,
    stock_end_g INTEGER,
    uncertainty_pct INTEGER NOT NULL,
    PRIMARY KEY (calculation_id, tree_id)
);
