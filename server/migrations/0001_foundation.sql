-- Places, people, trees and measurements, users and devices, the audit log.
-- Personal data (names, phones, ID and bank numbers) is stored only encrypted (*_enc).

CREATE TABLE counties (
    id INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE CHECK (code GLOB '[0-9][0-9][0-9][0-9][0-9][0-9]'),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at TEXT NOT NULL
);

CREATE TABLE villages (
    id INTEGER PRIMARY KEY,
    county_id INTEGER NOT NULL REFERENCES counties(id),
    code TEXT NOT NULL UNIQUE
        CHECK (length(code) = 12 AND code NOT GLOB '*[^0-9]*'),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    township TEXT,
    latitude REAL CHECK (latitude BETWEEN -90 AND 90),
    longitude REAL CHECK (longitude BETWEEN -180 AND 180),
    created_at TEXT NOT NULL
);
CREATE INDEX villages_county ON villages(county_id);

CREATE TABLE households (
    id INTEGER PRIMARY KEY,
    village_id INTEGER NOT NULL REFERENCES villages(id),
    seq INTEGER NOT NULL CHECK (seq BETWEEN 1 AND 9999),
    code TEXT NOT NULL UNIQUE,
    head_name_enc TEXT NOT NULL,
    phone_enc TEXT,
    id_number_enc TEXT,
    id_number_index TEXT UNIQUE,
    bank_account_enc TEXT,
    head_name_masked TEXT NOT NULL,
    phone_masked TEXT,
    bank_account_masked TEXT,
    consent_given INTEGER NOT NULL DEFAULT 0 CHECK (consent_given IN (0, 1)),
    consent_date TEXT,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (village_id, seq),
    CHECK (consent_given = 0 OR consent_date IS NOT NULL)
);

CREATE TABLE species (
    id TEXT PRIMARY KEY CHECK (id GLOB '[a-z]*' AND id NOT GLOB '*[^a-z_]*'),
    scientific_name TEXT NOT NULL,
    name_zh TEXT NOT NULL
);

CREATE TABLE trees (
    id TEXT PRIMARY KEY CHECK (length(id) BETWEEN 16 AND 40),
    household_id INTEGER NOT NULL REFERENCES households(id),
    species_id TEXT NOT NULL REFERENCES species(id),
    position TEXT NOT NULL CHECK (position IN ('house', 'village', 'road', 'water')),
    planting_year INTEGER CHECK (planting_year BETWEEN 1800 AND 2200),
    tag TEXT UNIQUE,
    status TEXT NOT NULL DEFAULT 'alive' CHECK (status IN ('alive', 'dead', 'felled')),
    status_changed_at TEXT,
    registered_by INTEGER REFERENCES users(id),
    device_id TEXT REFERENCES devices(id),
    created_at TEXT NOT NULL
);
CREATE INDEX trees_household ON trees(household_id);

-- DBH in millimetres and height in centimetres: exact integers, shown as cm and m.
CREATE TABLE measurements (
    id TEXT PRIMARY KEY CHECK (length(id) BETWEEN 16 AND 40),
    tree_id TEXT NOT NULL REFERENCES trees(id),
    dbh_mm INTEGER NOT NULL CHECK (dbh_mm BETWEEN 1 AND 5000),
    stems_mm TEXT,
    height_cm INTEGER CHECK (height_cm BETWEEN 10 AND 10000),
    latitude REAL CHECK (latitude BETWEEN -90 AND 90),
    longitude REAL CHECK (longitude BETWEEN -180 AND 180),
    gps_accuracy_m REAL CHECK (gps_accuracy_m >= 0),
    photo_sha256 TEXT CHECK (photo_sha256 IS NULL OR length(photo_sha256) = 64),
    measured_by INTEGER REFERENCES users(id),
    device_id TEXT REFERENCES devices(id),
    client_time TEXT NOT NULL,
    server_time TEXT NOT NULL
);
CREATE INDEX measurements_tree ON measurements(tree_id, client_time);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE
        CHECK (length(username) BETWEEN 3 AND 64 AND username NOT GLOB '*[^A-Za-z0-9._-]*'),
    display_name TEXT NOT NULL CHECK (length(display_name) BETWEEN 1 AND 100),
    password_hash TEXT,
    role TEXT NOT NULL
        CHECK (role IN ('admin', 'bureau', 'finance', 'verifier', 'measurer', 'enterprise')),
    county_id INTEGER REFERENCES counties(id),
    village_id INTEGER REFERENCES villages(id),
    organisation TEXT,
    active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    auth_epoch INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    CHECK (role != 'measurer' OR village_id IS NOT NULL),
    CHECK (role = 'measurer' OR password_hash IS NOT NULL),
    CHECK (role NOT IN ('bureau', 'verifier') OR county_id IS NOT NULL)
);

CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    village_id INTEGER NOT NULL REFERENCES villages(id),
    label TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    revoked_at TEXT,
    last_seen_at TEXT
);

CREATE TABLE enrolment_codes (
    id INTEGER PRIMARY KEY,
    code_hash TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id),
    village_id INTEGER NOT NULL REFERENCES villages(id),
    created_by INTEGER NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    device_id TEXT REFERENCES devices(id)
);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users(id),
    device_id TEXT REFERENCES devices(id),
    label TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);

-- Append-only, hash-chained: each row's hash covers its content and the previous hash.
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_append_only BEFORE INSERT ON audit_log
WHEN NEW.seq <= (SELECT coalesce(max(seq), 0) FROM audit_log)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

INSERT INTO species (id, scientific_name, name_zh) VALUES
    ('cunninghamia_lanceolata', 'Cunninghamia lanceolata', '杉木'),
    ('cinnamomum_camphora', 'Cinnamomum camphora', '樟树'),
    ('pinus_massoniana', 'Pinus massoniana', '马尾松'),
    ('populus_spp', 'Populus spp.', '杨树'),
    ('eucalyptus_spp', 'Eucalyptus spp.', '桉树'),
    ('liquidambar_formosana', 'Liquidambar formosana', '枫香'),
    ('ginkgo_biloba', 'Ginkgo biloba', '银杏'),
    ('quercus_spp', 'Quercus spp.', '栎类'),
    ('osmanthus_fragrans', 'Osmanthus fragrans', '桂花'),
    ('phyllostachys_edulis', 'Phyllostachys edulis', '毛竹'),
    ('citrus_reticulata', 'Citrus reticulata', '柑橘');
