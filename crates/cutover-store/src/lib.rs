//! cutover's store: records, SQLite and PostgreSQL backends, the audit chain.
//!
//! Every change goes through [`Store::apply`], which writes the changes and one audit event in a
//! single transaction (architecture invariant 1). The audit chain (invariant 2) is appended under
//! a lock so that concurrent writers never fork it: `BEGIN IMMEDIATE` on SQLite (a database-wide
//! write lock, also across processes), a transaction-scoped advisory lock on PostgreSQL.
//!
//! Storage conventions, the same on both backends: times are microseconds since the Unix epoch
//! (UTC) in 64-bit integer columns; JSON is kept as text (the audit payload in its canonical form
//! so that its hash can be recomputed byte for byte).

mod error;
mod migrate;
mod postgres;
mod queue;
mod records;
mod sql;
mod sqlite;
mod switches;
mod url;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

pub use error::StoreError;
pub use postgres::PgStore;
pub use queue::{EnqueueJob, Enqueued, JobClass, JobFilter, JobState, QueuePolicy};
pub use records::*;
pub use sqlite::SqliteStore;
pub use switches::{
    SWITCH_ACTION, SwitchClass, SwitchHost, SwitchPayload, SwitchServing, SwitchesBefore, classify,
};
pub use url::{Target, parse_target, redact_url};

/// What [`Store::data_version`] returns: on PostgreSQL the text of the current transaction
/// snapshot (`pg_current_snapshot()`, `xmin:xmax:xip…`), which changes when any transaction that
/// writes starts (it takes the next xid) and again when it ends (it leaves the in-progress list),
/// in any database of the cluster: equal values mean no commit happened in between. This covers
/// every write, audited or not (heartbeats, observations, job claims), unlike the audit log's
/// head.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataVersion(pub String);

/// Where the embedded default store lives, relative to the project directory.
pub const DEFAULT_SQLITE_PATH: &str = ".cutover/state.db";

/// The store: one source of truth for every record, and the audit chain.
///
/// Object safe; share it as `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// The database's location for messages (path, or URL with the password redacted).
    fn location(&self) -> &str;

    /// Applies `changes` in order and appends `audit`, all in one transaction: either everything
    /// is written or nothing is (an error in any change leaves no audit event).
    async fn apply(&self, changes: &[Change], audit: &Audit) -> Result<Applied, StoreError>;

    /// Appends an audit event that records no change of its own (e.g. a rejected webhook).
    async fn append_audit(&self, audit: &Audit) -> Result<AuditEvent, StoreError> {
        Ok(self.apply(&[], audit).await?.event)
    }

    /// Applies one change with its audit event; returns its outcome (the new id for inserts).
    async fn apply_one(&self, change: Change, audit: &Audit) -> Result<Outcome, StoreError> {
        let applied = self.apply(std::slice::from_ref(&change), audit).await?;
        Ok(applied.outcomes.first().copied().unwrap_or(Outcome::Done))
    }

    // --- releases and notices ---
    async fn get_release(&self, version: &str) -> Result<Option<Release>, StoreError>;
    /// Oldest first (by creation time, then version).
    async fn list_releases(&self) -> Result<Vec<Release>, StoreError>;
    async fn get_notice(&self, id: i64) -> Result<Option<Notice>, StoreError>;
    /// Oldest first; all versions when `version` is `None`.
    async fn list_notices(&self, version: Option<&str>) -> Result<Vec<Notice>, StoreError>;

    // --- deployments ---
    async fn get_deployment(&self, id: i64) -> Result<Option<Deployment>, StoreError>;
    /// Newest first.
    async fn list_deployments(
        &self,
        filter: &DeploymentFilter,
    ) -> Result<Vec<Deployment>, StoreError>;
    /// Newest first, only those matching every condition given (see [`DeploymentSearch`]).
    async fn search_deployments(
        &self,
        search: &DeploymentSearch,
    ) -> Result<Vec<Deployment>, StoreError>;
    /// In the order they were written.
    async fn list_deployment_steps(
        &self,
        deployment_id: i64,
    ) -> Result<Vec<DeploymentStep>, StoreError>;

    // --- hosts and agents ---
    async fn get_host(&self, name: &str) -> Result<Option<Host>, StoreError>;
    /// By name.
    async fn list_hosts(&self) -> Result<Vec<Host>, StoreError>;
    /// Heartbeat: sets `last_seen` (and the agent version when given). Not audited: it changes no
    /// state anyone acts on. Returns false when the host is unknown.
    async fn touch_host(
        &self,
        name: &str,
        at: Timestamp,
        agent_version: Option<&str>,
    ) -> Result<bool, StoreError>;
    /// The assignment with the highest generation.
    async fn current_assignment(&self, host: &str) -> Result<Option<Assignment>, StoreError>;
    /// Oldest first; only those of `generation` when given.
    async fn list_observations(
        &self,
        host: &str,
        generation: Option<i64>,
    ) -> Result<Vec<Observation>, StoreError>;
    /// The host's newest observation (any generation), `None` before its first report.
    async fn latest_observation(&self, host: &str) -> Result<Option<Observation>, StoreError>;
    /// The newest observation of each of `hosts` that has reported, in one query (by host).
    async fn latest_observations(&self, hosts: &[String]) -> Result<Vec<Observation>, StoreError>;
    /// Oldest first.
    async fn list_proofs(&self, deployment_id: i64) -> Result<Vec<Proof>, StoreError>;

    // --- jobs, incidents, locks ---
    async fn get_job(&self, id: i64) -> Result<Option<Job>, StoreError>;
    async fn get_incident(&self, id: i64) -> Result<Option<Incident>, StoreError>;
    /// Oldest first; all environments when `environment` is `None`.
    async fn list_incidents(&self, environment: Option<&str>) -> Result<Vec<Incident>, StoreError>;
    async fn get_lock(&self, environment: &str) -> Result<Option<EnvLock>, StoreError>;
    /// Extends the lease of a lock `holder` holds. Not audited (a heartbeat). False when not held.
    async fn renew_lock(
        &self,
        environment: &str,
        holder: &str,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError>;

    // --- the job queue (see the `queue` module: order, aging, leases, audit) ---
    /// Enqueues `job`, cancelling the queued jobs with the same supersede key; audited
    /// (`job.enqueue`, with the superseded ids) as `actor`. Wakes waiting workers.
    async fn enqueue_job(
        &self,
        job: &EnqueueJob,
        policy: &QueuePolicy,
        actor: &str,
    ) -> Result<Enqueued, StoreError>;
    /// Enqueues `jobs` in order in one transaction with one audit event (`job.enqueue`: for a
    /// single job the same event as [`Store::enqueue_job`]; for several, subject `jobs` and a
    /// payload listing their ids). Superseding applies in order, also inside the batch: a later
    /// job with the same key cancels an earlier one of the batch (inserted as `cancelled`).
    /// Returns one [`Enqueued`] per job, in order.
    async fn enqueue_jobs(
        &self,
        jobs: &[EnqueueJob],
        policy: &QueuePolicy,
        actor: &str,
    ) -> Result<Vec<Enqueued>, StoreError>;
    /// Claims up to `limit` runnable jobs in rank order for `worker` in one statement, never two
    /// of one concurrency group nor one of a group that has a running job; sorted by rank.
    /// Not audited.
    async fn claim_jobs(
        &self,
        worker: &str,
        now: Timestamp,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<Job>, StoreError>;
    /// Marks the jobs `worker` runs as succeeded with their results, in one transaction with one
    /// audit event (`job.complete`; for several jobs subject `jobs`, the ids in the payload).
    /// Returns the jobs completed; the ones `worker` no longer holds (lease lost) are left out.
    async fn complete_jobs(
        &self,
        worker: &str,
        results: &[(i64, serde_json::Value)],
        actor: &str,
    ) -> Result<Vec<Job>, StoreError>;
    /// Claims the runnable job (`run_at <= now`) with the lowest rank whose concurrency group has
    /// no running job, for `worker`, leased until `now + lease`; `None` when there is none.
    /// Not audited.
    async fn claim_job(
        &self,
        worker: &str,
        now: Timestamp,
        lease: std::time::Duration,
    ) -> Result<Option<Job>, StoreError>;
    /// Extends the lease `worker` holds on job `id`; false when it no longer holds it (the job was
    /// reclaimed, cancelled or finished). Not audited.
    async fn heartbeat_job(
        &self,
        id: i64,
        worker: &str,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Marks the job `worker` runs as succeeded with `result`; audited (`job.complete`).
    /// Conflict when `worker` does not hold it.
    async fn complete_job(
        &self,
        id: i64,
        worker: &str,
        result: &serde_json::Value,
        actor: &str,
    ) -> Result<Job, StoreError>;
    /// Records a failed attempt of the job `worker` runs: queued again after the backoff while
    /// `retry` and attempts remain, else failed for good (audited, `job.fail`). Conflict when
    /// `worker` does not hold it.
    #[allow(clippy::too_many_arguments)]
    async fn fail_job(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        result: Option<&serde_json::Value>,
        retry: bool,
        policy: &QueuePolicy,
        actor: &str,
    ) -> Result<Job, StoreError>;
    /// Running jobs whose lease ended before `now` (their worker died): queued again after the
    /// backoff (audited, `job.reclaim`) or failed after their last attempt (`job.fail`).
    async fn reclaim_expired_jobs(
        &self,
        now: Timestamp,
        policy: &QueuePolicy,
        actor: &str,
    ) -> Result<Vec<Job>, StoreError>;
    /// Cancels a queued job; audited (`job.cancel`). Conflict unless it is queued.
    async fn cancel_job(&self, id: i64, actor: &str, reason: &str) -> Result<Job, StoreError>;
    /// Sets a queued job's priority (clamped) and re-ranks it; audited (`job.bump`).
    async fn bump_job(
        &self,
        id: i64,
        priority: i64,
        policy: &QueuePolicy,
        actor: &str,
    ) -> Result<Job, StoreError>;
    /// Newest first.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError>;
    /// Returns when a job may have become runnable (an enqueue: LISTEN/NOTIFY on PostgreSQL; on
    /// SQLite an enqueue by this process) or after `timeout`, whichever comes first.
    async fn wait_for_work(&self, timeout: std::time::Duration) -> Result<(), StoreError>;

    // --- API tokens, webhook deliveries, notification cursors (`cutover serve`) ---
    /// By id, revoked ones included.
    async fn list_api_tokens(&self) -> Result<Vec<ApiToken>, StoreError>;
    /// The token whose secret hashes to `token_hash` (revoked ones too: the caller says why it
    /// refuses).
    async fn find_api_token(&self, token_hash: &str) -> Result<Option<ApiToken>, StoreError>;
    /// A value that changes whenever a write commits anywhere in the database, read fresh from
    /// the database (so it is the same for every replica): two reads that return the same value
    /// saw exactly the same committed data in between. `None` when the backend has no such value
    /// (SQLite): then nothing may be cached by it. See [`DataVersion`].
    async fn data_version(&self) -> Result<Option<DataVersion>, StoreError> {
        Ok(None)
    }
    /// [`Store::find_api_token`] and [`Store::data_version`] in one round trip (read in one
    /// statement, so the token is exactly as of that version).
    async fn find_api_token_versioned(
        &self,
        token_hash: &str,
    ) -> Result<(Option<ApiToken>, Option<DataVersion>), StoreError> {
        Ok((
            self.find_api_token(token_hash).await?,
            self.data_version().await?,
        ))
    }
    /// Records that a token was used. Not audited (it changes nothing anyone acts on).
    async fn touch_api_token(&self, id: i64, at: Timestamp) -> Result<(), StoreError>;
    /// The seq of the last audit event notification channel `channel` has handled; 0 before the first.
    async fn notification_cursor(&self, channel: &str) -> Result<i64, StoreError>;
    /// Moves `channel`'s cursor from `expected` to `to` (compare-and-set, so that two server
    /// replicas never notify twice): true when this call moved it. Not audited.
    async fn advance_notification_cursor(
        &self,
        channel: &str,
        expected: i64,
        to: i64,
    ) -> Result<bool, StoreError>;

    // --- audit ---
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;
    /// The `deployment.switch` events that decide what served on `environment` strictly before
    /// `until`, read from the switch index (see [`SwitchesBefore`]): what a replay of every
    /// switch of the environment up to `until` would end with, without reading them all.
    async fn switches_before(
        &self,
        environment: &str,
        until: Timestamp,
    ) -> Result<SwitchesBefore, StoreError>;
    /// Verifies the whole chain in seq order, reading it in batches (constant memory).
    async fn verify_audit(&self) -> Result<VerifyReport, StoreError>;

    /// Closes the connections (waits for them to be returned).
    async fn close(&self);
}

/// Opens (creating and migrating as needed) the store at `url`: `postgres://…`/`postgresql://…`,
/// `sqlite:PATH` or a plain path.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    match parse_target(url)? {
        Target::Sqlite(path) => open_sqlite(&path).await,
        Target::Postgres(url) => Ok(Arc::new(PgStore::open(&url).await?)),
    }
}

/// Opens the SQLite store at `path`, creating its parent directories and the file as needed.
pub async fn open_sqlite(path: &Path) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SqliteStore::open(path).await?))
}
