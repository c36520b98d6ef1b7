//! The SQLite backend: the embedded default at `.cutover/state.db`, safe for several processes.
//!
//! WAL lets readers run beside the one writer; every write transaction starts with
//! `BEGIN IMMEDIATE`, which takes the database's write lock up front (waiting up to the busy
//! timeout), so the audit head read inside it cannot be raced by another connection or process.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};

use crate::StoreError;
use crate::migrate::check_versions;
use crate::records::Backend;
use crate::sql::read_err;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a writer waits for another one (in this or another process) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite store.
pub struct SqliteStore {
    pool: SqlitePool,
    location: String,
    /// Wakes this process's workers when it enqueues (other processes are noticed by polling).
    wake: std::sync::Arc<tokio::sync::Notify>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("location", &self.location)
            .finish()
    }
}

impl SqliteStore {
    /// Opens the database file at `path`, creating it and its parent directories as needed, and
    /// applies the migrations it lacks.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let location = path.display().to_string();
        let unreachable = |reason: String| StoreError::Unreachable {
            url: location.clone(),
            reason,
        };
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                unreachable(format!(
                    "cannot create the directory {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            // sqlx hands rows from its SQLite thread over a channel; the default of 50 rows makes
            // long reads (verifying a million events) ping-pong between threads.
            .row_buffer_size(4096);
        let mut conn = connect_waiting(&options)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let migrated = migrate(&mut conn, &location).await;
        // Closing cannot lose anything: the migrations committed or failed already.
        let _ = conn.close().await;
        migrated?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(BUSY_TIMEOUT * 3)
            .connect_lazy_with(options);
        let store = SqliteStore {
            pool,
            location,
            wake: std::sync::Arc::new(tokio::sync::Notify::new()),
        };
        store.backfill_switch_index().await?;
        Ok(store)
    }

    /// The connection pool, for backend-specific work (the queue).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The highest schema version this binary knows.
    pub fn known_schema_version() -> i64 {
        crate::migrate::known_version(&MIGRATOR)
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(read_err("starting a write transaction"))
    }

    async fn lock_audit_head(
        _tx: &mut sqlx::Transaction<'static, Sqlite>,
    ) -> Result<(), StoreError> {
        // BEGIN IMMEDIATE already holds the database's write lock.
        Ok(())
    }

    // --- the queue's backend hooks (see `crate::queue`) ---

    /// Without statistics SQLite would read the claim through `jobs_state` and sort the whole
    /// backlog; the rank index gives the next job in one step whatever the backlog.
    /// SQLite has no database-wide version readable by every connection (`PRAGMA data_version`
    /// is per connection): nothing is cached by it.
    const DATA_VERSION: Option<&'static str> = None;

    const CLAIM_FROM: &'static str = "jobs j INDEXED BY jobs_claim";
    /// The claim's row lock: none needed, the write transaction holds the database.
    const CLAIM_LOCK: &'static str = "";
    /// The ids of a JSON array bound as `$4`.
    const JSON_IDS: &'static str = "SELECT value FROM json_each($4)";
    /// The `(id, result)` rows of a batch completion, from a JSON array of `[id, "result text"]`
    /// bound as `$1`.
    const DONE_ROWS: &'static str = "SELECT json_extract(value, '$[0]') AS id, \
         json_extract(value, '$[1]') AS result FROM json_each($1)";

    async fn lock_key(
        _tx: &mut sqlx::Transaction<'static, Sqlite>,
        _key: &str,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn notify_jobs(_tx: &mut sqlx::Transaction<'static, Sqlite>) -> Result<(), StoreError> {
        Ok(())
    }

    fn wake_local(&self) {
        self.wake.notify_waiters();
    }

    fn stop_listening(&self) {}

    async fn wait_for_work_impl(&self, timeout: Duration) -> Result<(), StoreError> {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
        Ok(())
    }
}

/// Connects, waiting while another process turns a new database to WAL: that switch needs an
/// exclusive lock which SQLite's busy timeout does not wait for.
async fn connect_waiting(options: &SqliteConnectOptions) -> Result<SqliteConnection, sqlx::Error> {
    let mut attempt: u32 = 0;
    loop {
        match SqliteConnection::connect_with(options).await {
            Err(sqlx::Error::Database(e))
                if attempt < 100
                    && e.code()
                        .and_then(|c| c.parse::<i32>().ok())
                        .is_some_and(|c| c & 0xff == 5) =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt.min(10)))).await;
            }
            other => return other,
        }
    }
}

async fn applied_versions(conn: &mut SqliteConnection) -> Result<Vec<i64>, sqlx::Error> {
    let (tables,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
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

async fn migrate(conn: &mut SqliteConnection, location: &str) -> Result<(), StoreError> {
    // Several processes may open a new database at once; SQLite has no migration lock, so the loser
    // of a race fails, re-reads the versions and finds the work done.
    let mut attempt = 0;
    loop {
        let applied = applied_versions(conn)
            .await
            .map_err(|e| StoreError::Unreachable {
                url: location.to_owned(),
                reason: format!("cannot read the schema version: {e}"),
            })?;
        if check_versions(&applied, &MIGRATOR, location)? {
            return Ok(());
        }
        match MIGRATOR.run(&mut *conn).await {
            Ok(()) => return Ok(()),
            Err(_) if attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(source) => {
                return Err(StoreError::Migrate {
                    url: location.to_owned(),
                    source,
                });
            }
        }
    }
}

crate::sql::impl_store!(SqliteStore, Sqlite, SqliteRow, Backend::Sqlite);
