-- Sync: the operation log (also the audit trail of field work), operations held behind a
-- gap in a device's sequence, photo blobs, and the change log that pull cursors follow.

ALTER TABLE devices ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE trees ADD COLUMN version INTEGER NOT NULL DEFAULT 1;

CREATE TABLE sync_ops (
    server_seq INTEGER PRIMARY KEY AUTOINCREMENT,
    op_id TEXT NOT NULL UNIQUE,
    device_id TEXT NOT NULL REFERENCES devices(id),
    device_seq INTEGER NOT NULL CHECK (device_seq >= 1),
    record_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    client_time TEXT NOT NULL,
    base_version INTEGER,
    received_at TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('applied', 'rejected')),
    reason TEXT,
    result TEXT NOT NULL,
    UNIQUE (device_id, device_seq)
);

CREATE TABLE sync_held (
    op_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    device_seq INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    client_time TEXT NOT NULL,
    base_version INTEGER,
    received_at TEXT NOT NULL,
    UNIQUE (device_id, device_seq)
);

CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY CHECK (length(sha256) = 64),
    size INTEGER NOT NULL CHECK (size >= 0),
    received_at TEXT NOT NULL
);

CREATE TABLE change_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    village_id INTEGER NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL
);
CREATE INDEX change_log_village ON change_log(village_id, seq);

-- What exists already is the first thing every phone pulls.
INSERT INTO change_log (village_id, entity, entity_id)
SELECT village_id, 'household', id FROM households ORDER BY id;
INSERT INTO change_log (village_id, entity, entity_id)
SELECT h.village_id, 'tree', t.id FROM trees t JOIN households h ON h.id = t.household_id
ORDER BY t.created_at;

CREATE TRIGGER households_changed_insert AFTER INSERT ON households
BEGIN
    INSERT INTO change_log (village_id, entity, entity_id) VALUES (NEW.village_id, 'household', NEW.id);
END;

CREATE TRIGGER households_changed_update AFTER UPDATE OF code, status, seq ON households
BEGIN
    INSERT INTO change_log (village_id, entity, entity_id) VALUES (NEW.village_id, 'household', NEW.id);
END;

CREATE TRIGGER trees_changed_insert AFTER INSERT ON trees
BEGIN
    INSERT INTO change_log (village_id, entity, entity_id)
    SELECT village_id, 'tree', NEW.id FROM households WHERE id = NEW.household_id;
END;

CREATE TRIGGER trees_changed_update AFTER UPDATE ON trees
BEGIN
    INSERT INTO change_log (village_id, entity, entity_id)
    SELECT village_id, 'tree', NEW.id FROM households WHERE id = NEW.household_id;
END;

CREATE TRIGGER measurements_changed AFTER INSERT ON measurements
BEGIN
    INSERT INTO change_log (village_id, entity, entity_id)
    SELECT h.village_id, 'tree', NEW.tree_id FROM trees t JOIN households h ON h.id = t.household_id
    WHERE t.id = NEW.tree_id;
END;

CREATE TRIGGER flags_changed_insert AFTER INSERT ON flags
BEGIN
    INSERT INTO change_log (village_id, entity, entity_id) VALUES (NEW.village_id, 'tree', NEW.tree_id);
END;

CREATE TRIGGER flags_changed_update AFTER UPDATE ON flags
BEGIN
    INSERT INTO change_log (village_id, entity, entity_id) VALUES (NEW.village_id, 'tree', NEW.tree_id);
END;
