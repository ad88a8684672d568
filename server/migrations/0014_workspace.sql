-- Invoice requests from enterprise buyers (发票抬头, 税号) for their paid orders; finance
-- marks each issued with the invoice number. One open request per order.
CREATE TABLE invoice_requests (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    order_id INTEGER NOT NULL REFERENCES orders(id),
    title TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 100),
    tax_id TEXT NOT NULL CHECK (length(tax_id) BETWEEN 15 AND 20),
    amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
    status TEXT NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'issued')),
    invoice_number TEXT CHECK (invoice_number IS NULL OR length(invoice_number) <= 40),
    requested_at TEXT NOT NULL,
    issued_at TEXT,
    issued_by INTEGER REFERENCES users(id),
    UNIQUE (order_id)
);
CREATE INDEX invoice_requests_user ON invoice_requests (user_id, status);
