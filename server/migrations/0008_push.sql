-- Web Push (DESIGN.md §10, docs/push.md): a browser's push subscription, tied to whoever it
-- speaks for (a household after its second factor, an order through its link, a measurer's
-- phone, a verifier), and the queue of messages the push worker sends. Messages are written
-- in the same transaction as the business change that causes them; nothing is sent inside a
-- request.

CREATE TABLE push_subscriptions (
    id INTEGER PRIMARY KEY,
    owner_type TEXT NOT NULL CHECK (owner_type IN ('household', 'order', 'device', 'user')),
    owner_id TEXT NOT NULL,
    endpoint TEXT NOT NULL CHECK (length(endpoint) BETWEEN 12 AND 1024),
    p256dh TEXT NOT NULL CHECK (length(p256dh) = 87),
    auth TEXT NOT NULL CHECK (length(auth) = 22),
    kinds TEXT NOT NULL,              -- JSON list of the kinds this subscriber wants
    quiet_start TEXT,                 -- 'HH:MM' county time (Asia/Shanghai), households only
    quiet_end TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_sent_at TEXT,
    UNIQUE (endpoint, owner_type, owner_id),
    CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
);
CREATE INDEX push_subscriptions_owner ON push_subscriptions (owner_type, owner_id);

CREATE TABLE push_messages (
    id INTEGER PRIMARY KEY,
    subscription_id INTEGER NOT NULL REFERENCES push_subscriptions(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,            -- JSON {title, body, url}, Chinese, short
    ttl_seconds INTEGER NOT NULL CHECK (ttl_seconds >= 0),
    urgency TEXT NOT NULL CHECK (urgency IN ('very-low', 'low', 'normal', 'high')),
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sent', 'failed', 'expired')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,    -- held until quiet hours end, or backing off
    expires_at TEXT NOT NULL,         -- no use sending after this (created + TTL + quiet hours)
    created_at TEXT NOT NULL,
    sent_at TEXT,
    last_status INTEGER,
    last_error TEXT
);
CREATE INDEX push_messages_due ON push_messages (state, next_attempt_at);
