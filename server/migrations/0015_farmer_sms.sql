-- Farmers' SMS notices (DESIGN.md §10): WeChat's browser, which opens most door plates, has no
-- Web Push, so a household may ask, after its second factor, for a text message when money is
-- sent. No phone number is stored here: the registered phone is decrypted (and the access
-- audited) only when a message is sent. Messages are written in the transaction of the
-- transfer that causes them and sent by the notice worker, never inside a request.
CREATE TABLE sms_optins (
    household_id INTEGER PRIMARY KEY REFERENCES households(id),
    opted_in_at TEXT NOT NULL,
    opted_out_at TEXT
);

CREATE TABLE sms_messages (
    id INTEGER PRIMARY KEY,
    household_id INTEGER NOT NULL REFERENCES households(id),
    template TEXT NOT NULL,
    params TEXT NOT NULL,             -- JSON of the template's params, never a phone number
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    last_error TEXT
);
CREATE INDEX sms_messages_due ON sms_messages (state, next_attempt_at);
