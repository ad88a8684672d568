-- A household moved to another village of its county gets a new code (the code names its
-- village), but the ledger keeps naming it by the key it had before the move, so what it
-- accrued and was paid stays one account on chain. NULL: the key is the code's first 17
-- characters (village and number), as before.
ALTER TABLE households ADD COLUMN ledger_key TEXT
    CHECK (ledger_key IS NULL OR ledger_key GLOB
        '[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9]');

-- Every move, for the household page and the audit trail: which codes and villages.
CREATE TABLE household_moves (
    id INTEGER PRIMARY KEY,
    household_id INTEGER NOT NULL REFERENCES households(id),
    from_village_id INTEGER NOT NULL REFERENCES villages(id),
    to_village_id INTEGER NOT NULL REFERENCES villages(id),
    old_code TEXT NOT NULL,
    new_code TEXT NOT NULL UNIQUE,
    reason TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
    moved_by INTEGER REFERENCES users(id),
    moved_at TEXT NOT NULL,
    CHECK (from_village_id != to_village_id)
);
CREATE INDEX household_moves_household ON household_moves (household_id);

-- A court's retirement (司法生态赔偿) names its case number (案号) in its own field,
-- e.g. （2026）赣0423刑初12号, printed as its own line on the certificate.
ALTER TABLE certificates ADD COLUMN case_number TEXT
    CHECK (case_number IS NULL OR length(case_number) BETWEEN 6 AND 40);
