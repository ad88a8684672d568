-- Payment providers (WeChat Pay, Alipay, testpay), refunds, statements, buyers' phones and
-- their one-time codes (issue 16).

-- One row per trade opened with a provider for an order (a buyer may try WeChat, then
-- Alipay): the provider knows the order by `out_trade_no`, never by the order's link.
CREATE TABLE payment_attempts (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    provider TEXT NOT NULL CHECK (provider IN ('wechat', 'alipay', 'testpay')),
    channel TEXT NOT NULL CHECK (channel IN ('native', 'h5', 'jsapi', 'page', 'wap', 'test')),
    out_trade_no TEXT NOT NULL UNIQUE CHECK (length(out_trade_no) BETWEEN 6 AND 32),
    amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
    pay_url TEXT,
    prepay_id TEXT,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'closed', 'refunded')),
    transaction_id TEXT,
    paid_fen INTEGER,
    queried_at TEXT,
    created_at TEXT NOT NULL,
    closed_at TEXT
);
CREATE INDEX payment_attempts_order ON payment_attempts(order_id);
CREATE UNIQUE INDEX payment_attempts_transaction ON payment_attempts(provider, transaction_id)
    WHERE transaction_id IS NOT NULL;

-- Money sent back through the provider for a payment that could not be applied (expired
-- reservation, sold out, wrong amount, a second payment of a paid order).
CREATE TABLE refunds (
    id INTEGER PRIMARY KEY,
    order_id INTEGER REFERENCES orders(id),
    attempt_id INTEGER REFERENCES payment_attempts(id),
    provider TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    out_refund_no TEXT NOT NULL UNIQUE,
    amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
    reason TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('requested', 'processing', 'succeeded', 'failed')),
    provider_refund_id TEXT,
    error TEXT,
    requested_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (provider, transaction_id)
);

-- A provider's daily statement (WeChat 交易账单, Alipay 业务明细对账单), kept once by hash.
CREATE TABLE statements (
    id INTEGER PRIMARY KEY,
    provider TEXT NOT NULL CHECK (provider IN ('wechat', 'alipay')),
    bill_date TEXT,
    filename TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    line_count INTEGER NOT NULL,
    matched INTEGER NOT NULL,
    unmatched INTEGER NOT NULL,
    imported_by TEXT NOT NULL,
    imported_at TEXT NOT NULL
);

CREATE TABLE statement_lines (
    id INTEGER PRIMARY KEY,
    statement_id INTEGER NOT NULL REFERENCES statements(id),
    line_no INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('payment', 'refund')),
    trade_time TEXT,
    transaction_id TEXT NOT NULL,
    out_trade_no TEXT,
    out_refund_no TEXT,
    amount_fen INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    order_id INTEGER REFERENCES orders(id),
    UNIQUE (statement_id, line_no)
);

-- The buyer's phone (encrypted, with a blind index to find their orders again under 我的证书)
-- and whether the buyer lets the public verify page show the beneficiary.
ALTER TABLE orders ADD COLUMN buyer_phone TEXT;
ALTER TABLE orders ADD COLUMN buyer_phone_index TEXT;
ALTER TABLE orders ADD COLUMN show_beneficiary INTEGER NOT NULL DEFAULT 0
    CHECK (show_beneficiary IN (0, 1));
ALTER TABLE orders ADD COLUMN pay_method TEXT;
CREATE INDEX orders_buyer_phone ON orders(buyer_phone_index) WHERE buyer_phone_index IS NOT NULL;

-- One-time codes for 我的证书: only a keyed hash of the code is kept.
CREATE TABLE buyer_codes (
    id INTEGER PRIMARY KEY,
    phone_index TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX buyer_codes_phone ON buyer_codes(phone_index, created_at);

-- Which trade a provider's event was about, so finance can refund a payment for an
-- unknown order by hand.
ALTER TABLE payment_events ADD COLUMN out_trade_no TEXT;
ALTER TABLE payment_events ADD COLUMN transaction_id TEXT;
