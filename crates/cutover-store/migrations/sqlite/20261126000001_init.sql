-- cutover store schema v1 (SQLite). Times are microseconds since the Unix epoch (UTC);
-- JSON is kept as text (the audit payload in its canonical form, so its hash is reproducible).

CREATE TABLE releases (
    version         TEXT PRIMARY KEY NOT NULL,
    tag             TEXT NOT NULL,
    commit_id       TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('normal', 'hotfix')),
    notes           TEXT NOT NULL,
    changes         TEXT NOT NULL,
    artifact_digest TEXT,
    bom             TEXT,
    created_us      INTEGER NOT NULL
);

CREATE TABLE notices (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    version     TEXT NOT NULL,
    content     TEXT NOT NULL,
    format      TEXT NOT NULL,
    recipients  TEXT NOT NULL,
    created_us  INTEGER NOT NULL,
    sent_us     INTEGER
);
CREATE INDEX notices_version ON notices (version);

CREATE TABLE deployments (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    environment     TEXT NOT NULL,
    release_version TEXT NOT NULL REFERENCES releases (version),
    strategy        TEXT NOT NULL,
    state           TEXT NOT NULL,
    trigger_kind    TEXT NOT NULL,
    actor           TEXT NOT NULL,
    reverts         INTEGER REFERENCES deployments (id),
    created_us      INTEGER NOT NULL,
    updated_us      INTEGER NOT NULL,
    finished_us     INTEGER
);
CREATE INDEX deployments_env ON deployments (environment, id);
CREATE INDEX deployments_unfinished ON deployments (id) WHERE finished_us IS NULL;

CREATE TABLE deployment_steps (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id INTEGER NOT NULL REFERENCES deployments (id),
    step          TEXT NOT NULL,
    intent        TEXT NOT NULL,
    result        TEXT,
    at_us         INTEGER NOT NULL,
    finished_us   INTEGER
);
CREATE INDEX deployment_steps_deployment ON deployment_steps (deployment_id, id);

CREATE TABLE hosts (
    name          TEXT PRIMARY KEY NOT NULL,
    token_hash    TEXT,
    agent_version TEXT,
    last_seen_us  INTEGER,
    created_us    INTEGER NOT NULL
);

CREATE TABLE assignments (
    host        TEXT NOT NULL REFERENCES hosts (name),
    generation  INTEGER NOT NULL,
    desired     TEXT NOT NULL,
    created_us  INTEGER NOT NULL,
    PRIMARY KEY (host, generation)
);

CREATE TABLE observations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    host       TEXT NOT NULL REFERENCES hosts (name),
    generation INTEGER NOT NULL,
    observed   TEXT NOT NULL,
    evidence   TEXT NOT NULL,
    at_us      INTEGER NOT NULL
);
CREATE INDEX observations_host ON observations (host, generation, id);

CREATE TABLE proofs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id INTEGER NOT NULL REFERENCES deployments (id),
    host          TEXT NOT NULL,
    statement     TEXT NOT NULL,
    envelope      TEXT NOT NULL,
    created_us    INTEGER NOT NULL
);
CREATE INDEX proofs_deployment ON proofs (deployment_id, id);

CREATE TABLE jobs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    class             TEXT NOT NULL,
    priority          INTEGER NOT NULL,
    kind              TEXT NOT NULL,
    payload           TEXT NOT NULL,
    state             TEXT NOT NULL,
    supersede_key     TEXT,
    concurrency_group TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    lease_owner       TEXT,
    lease_until_us    INTEGER,
    run_at_us         INTEGER NOT NULL,
    created_us        INTEGER NOT NULL
);
CREATE INDEX jobs_state ON jobs (state, run_at_us);

CREATE TABLE incidents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    environment TEXT NOT NULL,
    summary     TEXT NOT NULL,
    caused_by   INTEGER REFERENCES deployments (id),
    restored_by INTEGER REFERENCES deployments (id),
    opened_us   INTEGER NOT NULL,
    resolved_us INTEGER
);

CREATE TABLE env_locks (
    environment    TEXT PRIMARY KEY NOT NULL,
    holder         TEXT NOT NULL,
    message        TEXT NOT NULL,
    acquired_us    INTEGER NOT NULL,
    lease_until_us INTEGER NOT NULL
);

CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY NOT NULL,
    at_us     INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    payload   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_at ON audit (at_us);
CREATE INDEX audit_action ON audit (action, seq);
CREATE INDEX audit_subject ON audit (subject, seq);
