-- cutover store schema v4 (SQLite): what `cutover serve` needs: API tokens (only their sha256 is
-- kept), the webhook deliveries already seen (so that a replayed delivery is ignored), and the
-- position of each notification channel in the audit log.

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    -- JSON array of environment names; empty = every environment.
    environments TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    revoked_us INTEGER,
    last_used_us INTEGER
);

CREATE TABLE webhook_deliveries (
    provider TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    received_us INTEGER NOT NULL,
    PRIMARY KEY (provider, delivery_id)
);

CREATE TABLE notification_cursors (
    channel TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
