-- Trust under attack (issue 15).

-- Sessions ended by signing out: a cookie saved before logout is refused from then on.
CREATE TABLE ended_sessions (
    sid TEXT PRIMARY KEY CHECK (length(sid) BETWEEN 16 AND 64),
    ended_at TEXT NOT NULL
);

-- Each transfer remembers a keyed hash of the bank details it was made out to (at batch
-- creation); the batch's hashes are anchored on the ledger, so a bank account swapped in
-- the database afterwards shows in `sipang reconcile`.
ALTER TABLE settlements ADD COLUMN bank_sha256 TEXT
    CHECK (bank_sha256 IS NULL OR length(bank_sha256) = 64);

-- Sync: an op_id replayed with different content is refused and its device flagged.
CREATE TABLE sync_replay_conflicts (
    id INTEGER PRIMARY KEY,
    op_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    kept_sha256 TEXT NOT NULL,
    refused_sha256 TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX sync_replay_conflicts_device ON sync_replay_conflicts (device_id);
