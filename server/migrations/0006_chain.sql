-- The chain outbox (DESIGN.md §7): every ledger write is a row here, written in the same
-- transaction as the business change; the chain worker sends rows as signed transactions
-- and records what the node said. Deployed contracts are recorded per chain.

CREATE TABLE chain_deployments (
    id INTEGER PRIMARY KEY,
    chain_id INTEGER NOT NULL,
    contract TEXT NOT NULL,
    address TEXT NOT NULL,
    bytecode_sha256 TEXT NOT NULL,
    tx_hash TEXT,
    block_number INTEGER,
    deployer TEXT NOT NULL,
    deployed_at TEXT NOT NULL
);
CREATE INDEX chain_deployments_chain ON chain_deployments (chain_id, contract);

-- One signed transaction; recorded (with its raw bytes) before it is broadcast, so a crash
-- between sending and the receipt can always be resolved by asking the node about its hash.
CREATE TABLE chain_txs (
    id INTEGER PRIMARY KEY,
    tx_hash TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    sender TEXT NOT NULL,
    nonce INTEGER NOT NULL CHECK (nonce >= 0),
    raw_tx TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'signed'
        CHECK (state IN ('signed', 'mined', 'reverted', 'dropped')),
    signed_at TEXT NOT NULL,
    mined_at TEXT,
    block_number INTEGER,
    gas_used INTEGER,
    error TEXT
);
CREATE INDEX chain_txs_state ON chain_txs (state);

CREATE TABLE chain_outbox (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL
        CHECK (kind IN ('anchor', 'issue', 'retire', 'split_policy', 'accrue', 'settle')),
    chain_key TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'submitted', 'confirmed', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error TEXT,
    tx_id INTEGER REFERENCES chain_txs(id),
    tx_hash TEXT,
    block_number INTEGER,
    created_at TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    submitted_ms INTEGER,
    confirmed_at TEXT,
    confirm_ms INTEGER,
    note TEXT
);
CREATE INDEX chain_outbox_state ON chain_outbox (state, kind, id);
CREATE INDEX chain_outbox_tx ON chain_outbox (tx_id);
