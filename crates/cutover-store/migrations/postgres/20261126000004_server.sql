-- cutover store schema v4 (PostgreSQL): what `cutover serve` needs: API tokens (only their sha256 is
-- kept), the webhook deliveries already seen (so that a replayed delivery is ignored), and the
-- position of each notification channel in the audit log.

CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL,
    -- JSON array of environment names; empty = every environment.
    environments TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_by TEXT NOT NULL,
    created_us BIGINT NOT NULL,
    revoked_us BIGINT,
    last_used_us BIGINT
);

CREATE TABLE webhook_deliveries (
    provider TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    received_us BIGINT NOT NULL,
    PRIMARY KEY (provider, delivery_id)
);

CREATE TABLE notification_cursors (
    channel TEXT PRIMARY KEY,
    seq BIGINT NOT NULL
);
