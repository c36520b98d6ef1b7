-- cutover store schema v6: a derived index of the `deployment.switch` audit events, so that "what
-- ran at time T" reads the few switches that decide the answer instead of replaying every switch
-- of the environment. The audit log stays the only source of truth: these rows are written in the
-- transaction that appends the event (see `crate::switches`) and can be rebuilt from it at any time.

-- Every switch event with subject `env:<name>` that the replay would not skip silently: readable
-- (1: its payload reads and names the same environment) or unreadable (0: the replay warns).
CREATE TABLE audit_switches (
    seq         BIGINT PRIMARY KEY NOT NULL,
    environment TEXT NOT NULL,
    at_us       BIGINT NOT NULL,
    readable    BIGINT NOT NULL
);
CREATE INDEX audit_switches_env ON audit_switches (environment, readable, at_us);

-- Per readable switch, each host it names. The key carries `at_us` so that "the newest switch of
-- this host before T" is read from the index alone.
CREATE TABLE audit_switch_hosts (
    environment TEXT NOT NULL,
    host        TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    at_us       BIGINT NOT NULL,
    PRIMARY KEY (environment, host, seq, at_us)
);

-- Every host a readable switch of the environment ever named.
CREATE TABLE audit_switch_env_hosts (
    environment TEXT NOT NULL,
    host        TEXT NOT NULL,
    PRIMARY KEY (environment, host)
);

-- The existing events are indexed by the store when it next opens (it reads payloads the way the
-- views do, which SQL alone cannot); the row is removed once that is done.
CREATE TABLE audit_switch_backfill (
    pending BIGINT NOT NULL
);
INSERT INTO audit_switch_backfill (pending) VALUES (1);

-- A release's deployments (its page, the proofs of "what ran at T") without reading them all.
CREATE INDEX deployments_version ON deployments (release_version, id);
