//! The PostgreSQL backend, for `cutover serve` replicas sharing one database.
//!
//! Writers serialize only their audit append: a transaction-scoped advisory lock taken right
//! before the head of the chain is read, held until commit, so the chain never forks while the
//! changes themselves run concurrently.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow, Postgres};

use crate::StoreError;
use crate::migrate::check_versions;
use crate::records::Backend;
use crate::sql::read_err;
use crate::url::{redact_url, scrub};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// How long to wait for the server before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The advisory lock key that serializes audit appends ("cutover" in ASCII).
const AUDIT_LOCK_KEY: i64 = 0x0063_7574_6f76_6572;

/// The PostgreSQL store.
pub struct PgStore {
    pool: PgPool,
    location: String,
    /// Wakes this process's workers: on this process's enqueues and on `NOTIFY cutover_jobs`.
    wake: Arc<tokio::sync::Notify>,
    /// The task that LISTENs for `cutover_jobs`, started by the first `wait_for_work`.
    listener: tokio::sync::OnceCell<tokio::task::JoinHandle<()>>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.stop_listening();
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("location", &self.location)
            .finish()
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://…`), failing within a few seconds when the server does not
    /// answer, and applies the migrations the database lacks.
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let location = redact_url(url);
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl {
                url: location.clone(),
                reason: scrub(&e.to_string(), url),
            })?
            .application_name("cutover");
        let unreachable = |reason: String| StoreError::Unreachable {
            url: location.clone(),
            reason,
        };
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| {
                unreachable(format!(
                    "no answer within {} seconds",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| unreachable(scrub(&e.to_string(), url)))?;
        let migrated = migrate(&mut conn, &location).await;
        let _ = conn.close().await;
        migrated?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(CONNECT_TIMEOUT * 6)
            .connect_lazy_with(options);
        let store = PgStore {
            pool,
            location,
            wake: Arc::new(tokio::sync::Notify::new()),
            listener: tokio::sync::OnceCell::new(),
        };
        store.backfill_switch_index().await?;
        Ok(store)
    }

    /// The connection pool, for backend-specific work (the queue).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The highest schema version this binary knows.
    pub fn known_schema_version() -> i64 {
        crate::migrate::known_version(&MIGRATOR)
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
        self.pool
            .begin()
            .await
            .map_err(read_err("starting a write transaction"))
    }

    async fn lock_audit_head(
        tx: &mut sqlx::Transaction<'static, Postgres>,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_LOCK_KEY)
            .execute(&mut **tx)
            .await
            .map_err(read_err("locking the head of the audit chain"))?;
        Ok(())
    }

    // --- the queue's backend hooks (see `crate::queue`) ---

    /// The SQL expression of [`crate::Store::data_version`] (see [`crate::DataVersion`]).
    const DATA_VERSION: Option<&'static str> = Some("pg_current_snapshot()::text");

    const CLAIM_FROM: &'static str = "jobs j";
    /// Concurrent claimers skip each other's candidate rows instead of queueing behind them.
    const CLAIM_LOCK: &'static str = "FOR UPDATE SKIP LOCKED";
    /// The ids of a JSON array bound as `$4`.
    const JSON_IDS: &'static str = "SELECT (jsonb_array_elements_text($4::jsonb))::bigint";
    /// The `(id, result)` rows of a batch completion, from a JSON array of `[id, "result text"]`
    /// bound as `$1`: one statement text whatever the batch size, so it stays prepared.
    const DONE_ROWS: &'static str =
        "SELECT (e->>0)::bigint AS id, e->>1 AS result FROM jsonb_array_elements($1::jsonb) AS e";

    /// Serializes transactions on `key` (superseding: two enqueues with one key) until commit.
    async fn lock_key(
        tx: &mut sqlx::Transaction<'static, Postgres>,
        key: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(key)
            .execute(&mut **tx)
            .await
            .map_err(read_err("locking a supersede key"))?;
        Ok(())
    }

    /// Wakes every listening worker once the transaction commits.
    async fn notify_jobs(tx: &mut sqlx::Transaction<'static, Postgres>) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify('cutover_jobs', '')")
            .execute(&mut **tx)
            .await
            .map_err(read_err("notifying workers"))?;
        Ok(())
    }

    fn wake_local(&self) {
        self.wake.notify_waiters();
    }

    fn stop_listening(&self) {
        if let Some(task) = self.listener.get() {
            task.abort();
        }
    }

    async fn wait_for_work_impl(&self, timeout: Duration) -> Result<(), StoreError> {
        // Registered before the listener can deliver, so no wake-up between here and the wait
        // is lost.
        let notified = self.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        self.listener
            .get_or_try_init(|| async {
                let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool)
                    .await
                    .map_err(read_err("connecting to listen for new jobs"))?;
                listener
                    .listen("cutover_jobs")
                    .await
                    .map_err(read_err("listening for new jobs"))?;
                let wake = Arc::clone(&self.wake);
                Ok::<_, StoreError>(tokio::spawn(async move {
                    loop {
                        match listener.recv().await {
                            Ok(_) => wake.notify_waiters(),
                            Err(_) => {
                                // The connection dropped (sqlx reconnects on the next recv);
                                // notifications may have been missed: let workers look.
                                wake.notify_waiters();
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                        }
                    }
                }))
            })
            .await?;
        let _ = tokio::time::timeout(timeout, notified).await;
        Ok(())
    }
}

async fn applied_versions(conn: &mut PgConnection) -> Result<Vec<i64>, sqlx::Error> {
    let (tables,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
    )
    .fetch_one(&mut *conn)
    .await?;
    if tables == 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(|(v,)| v).collect())
}

async fn migrate(conn: &mut PgConnection, location: &str) -> Result<(), StoreError> {
    let applied = applied_versions(conn)
        .await
        .map_err(|e| StoreError::Unreachable {
            url: location.to_owned(),
            reason: format!("cannot read the schema version: {e}"),
        })?;
    if check_versions(&applied, &MIGRATOR, location)? {
        return Ok(());
    }
    // sqlx takes a session advisory lock around the migrations, so concurrent openers wait.
    MIGRATOR
        .run(&mut *conn)
        .await
        .map_err(|source| StoreError::Migrate {
            url: location.to_owned(),
            source,
        })
}

crate::sql::impl_store!(PgStore, Postgres, PgRow, Backend::Postgres);
