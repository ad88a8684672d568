-- Village kits: door plates that can be replaced, roster imports, printed tree tags.

ALTER TABLE households ADD COLUMN plate_no INTEGER NOT NULL DEFAULT 1 CHECK (plate_no >= 1);
ALTER TABLE households ADD COLUMN door_number_enc TEXT;

-- Codes of plates that were replaced (lost or damaged): scanning one says so.
CREATE TABLE revoked_plates (
    code TEXT PRIMARY KEY,
    household_id INTEGER NOT NULL REFERENCES households(id),
    plate_no INTEGER NOT NULL,
    revoked_at TEXT NOT NULL,
    reason TEXT NOT NULL
);

CREATE TABLE roster_imports (
    id INTEGER PRIMARY KEY,
    village_id INTEGER NOT NULL REFERENCES villages(id),
    filename TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    rows INTEGER NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    unchanged INTEGER NOT NULL,
    imported_by INTEGER REFERENCES users(id),
    imported_at TEXT NOT NULL
);

-- Numbered tree tags printed in a kit: `<village code>-T<number>-<check>`.
CREATE TABLE tree_tag_batches (
    id INTEGER PRIMARY KEY,
    village_id INTEGER NOT NULL REFERENCES villages(id),
    first_number INTEGER NOT NULL CHECK (first_number >= 1),
    last_number INTEGER NOT NULL CHECK (last_number >= first_number),
    printed_at TEXT NOT NULL,
    UNIQUE (village_id, first_number)
);

-- A keyed fingerprint of a household's personal fields: a re-imported roster row that
-- matches it changes nothing.
ALTER TABLE households ADD COLUMN pii_fingerprint TEXT;
