-- GET /api/v1/chain/status reads the latest confirmation times by id within the confirmed
-- state; (state, kind, id) made SQLite sort every confirmed row first (a million at scale).
CREATE INDEX chain_outbox_state_recent ON chain_outbox (state, id);
-- The oldest row still waiting: two index seeks instead of a walk over the outbox.
CREATE INDEX chain_outbox_state_created ON chain_outbox (state, created_at);
