//! Connections to the application database and the migration history kept in it
//! (`cutover_migrations`): status, plan, migrate under a lock, and rollback through down
//! migrations.
//!
//! The down migration's text is recorded with each applied migration, so a rollback never depends
//! on the files of whatever is checked out when it runs.

use std::str::FromStr as _;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::migrations::{self, Migration, Phase};
use crate::{AppDb, AppDbError, Engine};

/// A row of `cutover_migrations`: version, name, phase, checksum, down SQL, irreversible,
/// applied at, release (the same columns on both engines).
type HistoryRow = (
    i64,
    String,
    String,
    String,
    Option<String>,
    bool,
    String,
    Option<String>,
);

/// The key of the PostgreSQL advisory lock every cutover migrator takes ("cutover" in ASCII).
const LOCK_KEY: i64 = 0x0063_7574_6f76_6572;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

const PG_TABLE: &str = "CREATE TABLE IF NOT EXISTS cutover_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    phase TEXT NOT NULL,
    checksum TEXT NOT NULL,
    down_sql TEXT,
    irreversible BOOLEAN NOT NULL,
    applied_at TEXT NOT NULL,
    release TEXT
)";
const SQLITE_TABLE: &str = "CREATE TABLE IF NOT EXISTS cutover_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    phase TEXT NOT NULL,
    checksum TEXT NOT NULL,
    down_sql TEXT,
    irreversible BOOLEAN NOT NULL,
    applied_at TEXT NOT NULL,
    release TEXT
)";

pub(crate) enum Conn {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

/// A migration recorded as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppliedMigration {
    pub version: i64,
    pub name: String,
    pub phase: Phase,
    pub checksum: String,
    pub irreversible: bool,
    /// A down migration was recorded when it ran.
    pub has_down: bool,
    /// RFC 3339.
    pub applied_at: String,
    /// The release whose deployment applied it (none when run by hand).
    pub release: Option<String>,
    #[serde(skip)]
    pub(crate) down: Option<String>,
}

impl AppliedMigration {
    #[must_use]
    pub fn id(&self) -> String {
        format!("{:04}_{}", self.version, self.name)
    }
}

/// A migration named in a plan or a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationRef {
    pub version: i64,
    pub name: String,
    pub phase: Phase,
    pub irreversible: bool,
    /// Runs outside a transaction (`-- cutover:no-transaction`).
    pub no_transaction: bool,
    pub path: String,
}

impl MigrationRef {
    fn of(m: &Migration) -> MigrationRef {
        MigrationRef {
            version: m.version,
            name: m.name.clone(),
            phase: m.phase,
            irreversible: m.irreversible || m.down.is_none(),
            no_transaction: m.no_transaction,
            path: m.up_path.clone(),
        }
    }

    #[must_use]
    pub fn id(&self) -> String {
        format!("{:04}_{}", self.version, self.name)
    }
}

/// A migration whose file changed after it ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drifted {
    pub version: i64,
    pub name: String,
    pub path: String,
    pub recorded: String,
    pub now: String,
}

/// What the database has against what the files bring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub target: String,
    pub applied: Vec<AppliedMigration>,
    pub pending: Vec<MigrationRef>,
    pub drifted: Vec<Drifted>,
    /// Applied, but no file of that version is present.
    pub unknown: Vec<i64>,
}

/// What migrating would do: the pending expand and contract migrations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub expand: Vec<MigrationRef>,
    pub contract: Vec<MigrationRef>,
    pub drifted: Vec<Drifted>,
}

impl Plan {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.expand.is_empty() && self.contract.is_empty()
    }
}

/// Which applied migrations a rollback reverts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every applied migration with a higher version.
    AfterVersion(i64),
    /// Those recorded with one of these releases.
    Releases(Vec<String>),
}

fn sql_err(db: &AppDb, what: &str, e: &sqlx::Error) -> AppDbError {
    // SQLite: another connection's exclusive transaction outlasted the busy timeout.
    if db.engine == Engine::Sqlite && e.to_string().contains("database is locked") {
        return AppDbError::LockBusy {
            target: db.target(),
            waited_s: db.lock_timeout.as_secs(),
        };
    }
    AppDbError::Sql {
        target: db.target(),
        what: what.to_owned(),
        message: e.to_string(),
    }
}

impl AppDb {
    pub(crate) async fn connect(&self) -> Result<Conn, AppDbError> {
        let fail = |message: String| AppDbError::Connect {
            target: self.target(),
            message,
        };
        match self.engine {
            Engine::Postgres => {
                let opts = PgConnectOptions::from_str(&self.url)
                    // The parse error may quote the URL: say only that it is malformed.
                    .map_err(|_| fail("the URL is not a valid postgres:// URL".into()))?;
                let c = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&opts))
                    .await
                    .map_err(|_| fail(format!("no answer within {CONNECT_TIMEOUT:?}")))?
                    .map_err(|e| fail(e.to_string()))?;
                Ok(Conn::Pg(c))
            }
            Engine::Sqlite => {
                let path = self.sqlite_path();
                let opts = SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true)
                    .busy_timeout(self.lock_timeout);
                let c = SqliteConnection::connect_with(&opts)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                Ok(Conn::Sqlite(c))
            }
        }
    }

    async fn read_history(&self, conn: &mut Conn) -> Result<Vec<AppliedMigration>, AppDbError> {
        let select = "SELECT version, name, phase, checksum, down_sql, irreversible, applied_at, release FROM cutover_migrations ORDER BY version";
        let rows = match conn {
            Conn::Pg(c) => {
                let exists: Option<String> =
                    sqlx::query_scalar("SELECT to_regclass('cutover_migrations')::text")
                        .fetch_one(&mut *c)
                        .await
                        .map_err(|e| sql_err(self, "reading the migration history", &e))?;
                if exists.is_none() {
                    return Ok(Vec::new());
                }
                sqlx::query_as::<_, HistoryRow>(select)
                    .fetch_all(&mut *c)
                    .await
                    .map_err(|e| sql_err(self, "reading the migration history", &e))?
            }
            Conn::Sqlite(c) => {
                let n: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'cutover_migrations'",
                )
                .fetch_one(&mut *c)
                .await
                .map_err(|e| sql_err(self, "reading the migration history", &e))?;
                if n == 0 {
                    return Ok(Vec::new());
                }
                sqlx::query_as::<_, HistoryRow>(select)
                    .fetch_all(&mut *c)
                    .await
                    .map_err(|e| sql_err(self, "reading the migration history", &e))?
            }
        };
        Ok(rows
            .into_iter()
            .map(
                |(version, name, phase, checksum, down, irreversible, applied_at, release)| {
                    AppliedMigration {
                        version,
                        name,
                        phase: Phase::parse(&phase).unwrap_or(Phase::Expand),
                        checksum,
                        irreversible,
                        has_down: down.is_some(),
                        applied_at,
                        release,
                        down,
                    }
                },
            )
            .collect())
    }

    /// The applied migrations (none when the history table does not exist yet).
    pub async fn applied(&self) -> Result<Vec<AppliedMigration>, AppDbError> {
        let mut conn = self.connect().await?;
        let h = self.read_history(&mut conn).await;
        close(conn).await;
        h
    }

    /// What is applied, pending and drifted, against `available`.
    pub async fn status(&self, available: &[Migration]) -> Result<Status, AppDbError> {
        let applied = self.applied().await?;
        Ok(status_of(self.target(), applied, available))
    }

    /// The pending expand and contract migrations of `available`.
    pub async fn plan(&self, available: &[Migration]) -> Result<Plan, AppDbError> {
        let s = self.status(available).await?;
        Ok(Plan {
            expand: s
                .pending
                .iter()
                .filter(|m| m.phase == Phase::Expand)
                .cloned()
                .collect(),
            contract: s
                .pending
                .iter()
                .filter(|m| m.phase == Phase::Contract)
                .cloned()
                .collect(),
            drifted: s.drifted,
        })
    }

    /// Applies the pending migrations of `available` (only those of `phase` when given), by
    /// version, each in its own transaction, recording `release`. Refuses when any applied
    /// migration drifted. Holds the migrator lock meanwhile. Returns what it applied (another
    /// migrator may have applied some meanwhile: those are not returned).
    pub async fn migrate(
        &self,
        available: &[Migration],
        phase: Option<Phase>,
        release: Option<&str>,
    ) -> Result<Vec<MigrationRef>, AppDbError> {
        let mut conn = self.connect().await?;
        let result = self.migrate_on(&mut conn, available, phase, release).await;
        if let Conn::Pg(c) = &mut conn {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(LOCK_KEY)
                .execute(&mut *c)
                .await;
        }
        close(conn).await;
        result
    }

    async fn migrate_on(
        &self,
        conn: &mut Conn,
        available: &[Migration],
        phase: Option<Phase>,
        release: Option<&str>,
    ) -> Result<Vec<MigrationRef>, AppDbError> {
        // Drift is checked before anything changes (and again under the lock).
        let before = self.read_history(conn).await?;
        check_drift(&status_of(self.target(), before, available))?;
        if let Conn::Pg(c) = conn {
            self.pg_lock(c).await?;
        }
        self.ensure_table(conn).await?;
        let applied = self.read_history(conn).await?;
        let status = status_of(self.target(), applied, available);
        check_drift(&status)?;
        let mut done = Vec::new();
        for r in status
            .pending
            .iter()
            .filter(|m| phase.is_none_or(|p| m.phase == p))
        {
            let m = available
                .iter()
                .find(|m| m.version == r.version)
                .expect("pending migrations come from `available`");
            if self.apply_one(conn, m, release).await? {
                done.push(r.clone());
            }
        }
        Ok(done)
    }

    async fn pg_lock(&self, c: &mut PgConnection) -> Result<(), AppDbError> {
        let start = Instant::now();
        loop {
            let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(LOCK_KEY)
                .fetch_one(&mut *c)
                .await
                .map_err(|e| sql_err(self, "taking the migrator lock", &e))?;
            if got {
                return Ok(());
            }
            if start.elapsed() >= self.lock_timeout {
                return Err(AppDbError::LockBusy {
                    target: self.target(),
                    waited_s: start.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn ensure_table(&self, conn: &mut Conn) -> Result<(), AppDbError> {
        let r = match conn {
            Conn::Pg(c) => sqlx::raw_sql(PG_TABLE).execute(&mut *c).await.map(drop),
            Conn::Sqlite(c) => sqlx::raw_sql(SQLITE_TABLE).execute(&mut *c).await.map(drop),
        };
        r.map_err(|e| sql_err(self, "creating the migration history table", &e))
    }

    /// Runs one up migration and records it, in one transaction. `false`: another migrator
    /// applied it meanwhile (SQLite, where the lock is the exclusive transaction itself).
    async fn apply_one(
        &self,
        conn: &mut Conn,
        m: &Migration,
        release: Option<&str>,
    ) -> Result<bool, AppDbError> {
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let record_err =
            |e: sqlx::Error| sql_err(self, &format!("recording migration {}", m.id()), &e);
        if m.no_transaction {
            return self.apply_outside_transaction(conn, m, release, &now).await;
        }
        match conn {
            Conn::Pg(c) => {
                let mut tx = c
                    .begin()
                    .await
                    .map_err(|e| sql_err(self, "starting a transaction", &e))?;
                if let Err(e) = sqlx::raw_sql(&m.up).execute(&mut *tx).await {
                    let _ = tx.rollback().await;
                    return Err(pg_failure(&m.id(), &m.up_path, &m.up, &e));
                }
                sqlx::query("INSERT INTO cutover_migrations (version, name, phase, checksum, down_sql, irreversible, applied_at, release) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                    .bind(m.version)
                    .bind(&m.name)
                    .bind(m.phase.as_str())
                    .bind(&m.checksum)
                    .bind(m.down.as_deref())
                    .bind(m.irreversible)
                    .bind(&now)
                    .bind(release)
                    .execute(&mut *tx)
                    .await
                    .map_err(record_err)?;
                tx.commit().await.map_err(record_err)?;
                Ok(true)
            }
            Conn::Sqlite(c) => {
                // The exclusive transaction is the migrator lock: a second migrator waits in
                // BEGIN (busy timeout) and then sees the history row.
                sqlx::raw_sql("BEGIN EXCLUSIVE")
                    .execute(&mut *c)
                    .await
                    .map_err(|e| self.busy_or(e, "taking the migrator lock"))?;
                let result = self.sqlite_apply(c, m, release, &now).await;
                let end = if matches!(result, Ok(true)) {
                    "COMMIT"
                } else {
                    "ROLLBACK"
                };
                let ended = sqlx::raw_sql(end).execute(&mut *c).await;
                let applied = result?;
                ended.map_err(record_err)?;
                Ok(applied)
            }
        }
    }

    /// A `-- cutover:no-transaction` migration: its statements one by one, each committing on
    /// its own, then the history row. PostgreSQL: under the migrator's advisory lock as usual.
    /// SQLite: the exclusive transaction that is the lock cannot span it, so the history is
    /// checked before and again when recording (two migrators may both run its statements,
    /// which such a migration must tolerate anyway).
    async fn apply_outside_transaction(
        &self,
        conn: &mut Conn,
        m: &Migration,
        release: Option<&str>,
        now: &str,
    ) -> Result<bool, AppDbError> {
        let record_err =
            |e: sqlx::Error| sql_err(self, &format!("recording migration {}", m.id()), &e);
        match conn {
            Conn::Pg(c) => {
                run_pg_statements(c, &m.id(), &m.up_path, &m.up, false).await?;
                sqlx::query("INSERT INTO cutover_migrations (version, name, phase, checksum, down_sql, irreversible, applied_at, release) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                    .bind(m.version)
                    .bind(&m.name)
                    .bind(m.phase.as_str())
                    .bind(&m.checksum)
                    .bind(m.down.as_deref())
                    .bind(m.irreversible)
                    .bind(now)
                    .bind(release)
                    .execute(&mut *c)
                    .await
                    .map_err(record_err)?;
                Ok(true)
            }
            Conn::Sqlite(c) => {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM cutover_migrations WHERE version = ?")
                        .bind(m.version)
                        .fetch_one(&mut *c)
                        .await
                        .map_err(|e| self.busy_or(e, "reading the migration history"))?;
                if n > 0 {
                    return Ok(false);
                }
                run_sqlite_statements(c, &m.id(), &m.up_path, &m.up)
                    .await
                    .map_err(|(applied, e)| partially(e, applied, false))?;
                sqlx::raw_sql("BEGIN EXCLUSIVE")
                    .execute(&mut *c)
                    .await
                    .map_err(|e| self.busy_or(e, "taking the migrator lock"))?;
                let result = self.sqlite_apply_record(c, m, release, now).await;
                let end = if matches!(result, Ok(true)) {
                    "COMMIT"
                } else {
                    "ROLLBACK"
                };
                let ended = sqlx::raw_sql(end).execute(&mut *c).await;
                let applied = result?;
                ended.map_err(record_err)?;
                Ok(applied)
            }
        }
    }

    fn busy_or(&self, e: sqlx::Error, what: &str) -> AppDbError {
        if e.to_string().contains("locked") {
            AppDbError::LockBusy {
                target: self.target(),
                waited_s: self.lock_timeout.as_secs(),
            }
        } else {
            sql_err(self, what, &e)
        }
    }

    async fn sqlite_apply(
        &self,
        c: &mut SqliteConnection,
        m: &Migration,
        release: Option<&str>,
        now: &str,
    ) -> Result<bool, AppDbError> {
        if self.sqlite_recorded(c, m).await? {
            return Ok(false);
        }
        run_sqlite_script(c, &m.id(), &m.up_path, &m.up).await?;
        self.sqlite_apply_record(c, m, release, now).await
    }

    /// Whether `m` is in the history already.
    async fn sqlite_recorded(
        &self,
        c: &mut SqliteConnection,
        m: &Migration,
    ) -> Result<bool, AppDbError> {
        let seen: i64 =
            sqlx::query_scalar("SELECT count(*) FROM cutover_migrations WHERE version = ?")
                .bind(m.version)
                .fetch_one(&mut *c)
                .await
                .map_err(|e| sql_err(self, "reading the migration history", &e))?;
        Ok(seen > 0)
    }

    /// The history row of `m` (`false`: another migrator recorded it meanwhile).
    async fn sqlite_apply_record(
        &self,
        c: &mut SqliteConnection,
        m: &Migration,
        release: Option<&str>,
        now: &str,
    ) -> Result<bool, AppDbError> {
        if self.sqlite_recorded(c, m).await? {
            return Ok(false);
        }
        sqlx::query("INSERT INTO cutover_migrations (version, name, phase, checksum, down_sql, irreversible, applied_at, release) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(m.version)
            .bind(&m.name)
            .bind(m.phase.as_str())
            .bind(&m.checksum)
            .bind(m.down.as_deref())
            .bind(m.irreversible)
            .bind(now)
            .bind(release)
            .execute(&mut *c)
            .await
            .map_err(|e| sql_err(self, &format!("recording migration {}", m.id()), &e))?;
        Ok(true)
    }

    /// The applied migrations `sel` names, in the order a rollback reverts them: contract ones
    /// first, each phase newest first.
    pub async fn rollback_plan(
        &self,
        sel: &Selection,
    ) -> Result<Vec<AppliedMigration>, AppDbError> {
        Ok(order_for_rollback(select(self.applied().await?, sel)))
    }

    /// Reverts the applied migrations `sel` names with their down migrations (recorded when they
    /// ran; else the file of the same checksum in `available`), contract first, newest first,
    /// each in its own transaction. Refuses, changing nothing, when one of them is irreversible
    /// or has no down migration.
    pub async fn rollback(
        &self,
        sel: &Selection,
        available: &[Migration],
    ) -> Result<Vec<AppliedMigration>, AppDbError> {
        let mut conn = self.connect().await?;
        let result = self.rollback_on(&mut conn, sel, available).await;
        if let Conn::Pg(c) = &mut conn {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(LOCK_KEY)
                .execute(&mut *c)
                .await;
        }
        close(conn).await;
        result
    }

    async fn rollback_on(
        &self,
        conn: &mut Conn,
        sel: &Selection,
        available: &[Migration],
    ) -> Result<Vec<AppliedMigration>, AppDbError> {
        if let Conn::Pg(c) = conn {
            self.pg_lock(c).await?;
        }
        let mut todo = order_for_rollback(select(self.read_history(conn).await?, sel));
        for a in &mut todo {
            if a.down.is_none()
                && let Some(m) = available
                    .iter()
                    .find(|m| m.version == a.version && m.checksum == a.checksum)
            {
                a.down.clone_from(&m.down);
            }
        }
        check_reversible(&todo)?;
        let mut done = Vec::new();
        for a in todo {
            let down = a.down.clone().unwrap_or_default();
            let shown = format!("down migration of {} (as recorded)", a.id());
            if migrations::wants_no_transaction(&down) {
                self.revert_outside_transaction(conn, &a, &shown, &down)
                    .await?;
                done.push(a);
                continue;
            }
            match conn {
                Conn::Pg(c) => {
                    let mut tx = c
                        .begin()
                        .await
                        .map_err(|e| sql_err(self, "starting a transaction", &e))?;
                    if let Err(e) = sqlx::raw_sql(&down).execute(&mut *tx).await {
                        let _ = tx.rollback().await;
                        return Err(pg_failure(&a.id(), &shown, &down, &e));
                    }
                    sqlx::query("DELETE FROM cutover_migrations WHERE version = $1")
                        .bind(a.version)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| sql_err(self, "updating the migration history", &e))?;
                    tx.commit()
                        .await
                        .map_err(|e| sql_err(self, "updating the migration history", &e))?;
                }
                Conn::Sqlite(c) => {
                    sqlx::raw_sql("BEGIN EXCLUSIVE")
                        .execute(&mut *c)
                        .await
                        .map_err(|e| self.busy_or(e, "taking the migrator lock"))?;
                    let r = async {
                        run_sqlite_script(c, &a.id(), &shown, &down).await?;
                        sqlx::query("DELETE FROM cutover_migrations WHERE version = ?")
                            .bind(a.version)
                            .execute(&mut *c)
                            .await
                            .map_err(|e| sql_err(self, "updating the migration history", &e))?;
                        Ok::<_, AppDbError>(())
                    }
                    .await;
                    let end = if r.is_ok() { "COMMIT" } else { "ROLLBACK" };
                    let ended = sqlx::raw_sql(end).execute(&mut *c).await;
                    r?;
                    ended.map_err(|e| sql_err(self, "updating the migration history", &e))?;
                }
            }
            done.push(a);
        }
        Ok(done)
    }
}

impl AppDb {
    /// A down migration marked `-- cutover:no-transaction`: its statements one by one, then the
    /// history row is removed (it stays when a statement fails).
    async fn revert_outside_transaction(
        &self,
        conn: &mut Conn,
        a: &AppliedMigration,
        shown: &str,
        down: &str,
    ) -> Result<(), AppDbError> {
        let history = |e: sqlx::Error| sql_err(self, "updating the migration history", &e);
        match conn {
            Conn::Pg(c) => {
                run_pg_statements(c, &a.id(), shown, down, true).await?;
                sqlx::query("DELETE FROM cutover_migrations WHERE version = $1")
                    .bind(a.version)
                    .execute(&mut *c)
                    .await
                    .map_err(history)?;
            }
            Conn::Sqlite(c) => {
                run_sqlite_statements(c, &a.id(), shown, down)
                    .await
                    .map_err(|(applied, e)| partially(e, applied, true))?;
                sqlx::query("DELETE FROM cutover_migrations WHERE version = ?")
                    .bind(a.version)
                    .execute(&mut *c)
                    .await
                    .map_err(history)?;
            }
        }
        Ok(())
    }
}

/// A statement's failure in a script run outside a transaction, with how many ran before it.
fn partially(e: AppDbError, applied: usize, reverting: bool) -> AppDbError {
    match e {
        AppDbError::MigrationFailed {
            id,
            path,
            line,
            column,
            message,
        } => AppDbError::PartiallyApplied {
            id,
            path,
            line,
            column,
            message,
            applied,
            reverting,
        },
        other => other,
    }
}

/// Runs a script on PostgreSQL statement by statement, outside any transaction (several
/// statements in one simple query would form an implicit transaction, which
/// `CREATE INDEX CONCURRENTLY` refuses).
async fn run_pg_statements(
    c: &mut PgConnection,
    id: &str,
    path: &str,
    script: &str,
    reverting: bool,
) -> Result<(), AppDbError> {
    for (i, st) in migrations::split_statements(script, migrations::Dialect::Postgres)
        .iter()
        .enumerate()
    {
        if let Err(e) = sqlx::raw_sql(st.text).execute(&mut *c).await {
            // The error's position is within the statement: shift it to the script.
            let before = script[..st.offset.min(script.len())].chars().count();
            let e = match pg_failure(id, path, st.text, &e) {
                AppDbError::MigrationFailed {
                    id, path, message, ..
                } => {
                    let pos = pg_position(&e).map_or(before + 1, |n| before + n);
                    let (line, column) = migrations::line_col_of_char(script, pos);
                    AppDbError::MigrationFailed {
                        id,
                        path,
                        line,
                        column,
                        message,
                    }
                }
                other => other,
            };
            return Err(partially(e, i, reverting));
        }
    }
    Ok(())
}

fn pg_position(e: &sqlx::Error) -> Option<usize> {
    match e {
        sqlx::Error::Database(d) => d
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .and_then(|p| match p.position() {
                Some(sqlx::postgres::PgErrorPosition::Original(n)) => Some(n),
                _ => None,
            }),
        _ => None,
    }
}

/// Closes a connection politely (errors on close change nothing).
pub(crate) async fn close(conn: Conn) {
    match conn {
        Conn::Pg(c) => {
            let _ = c.close().await;
        }
        Conn::Sqlite(c) => {
            let _ = c.close().await;
        }
    }
}

fn select(applied: Vec<AppliedMigration>, sel: &Selection) -> Vec<AppliedMigration> {
    applied
        .into_iter()
        .filter(|a| match sel {
            Selection::AfterVersion(v) => a.version > *v,
            Selection::Releases(rs) => a.release.as_ref().is_some_and(|r| rs.contains(r)),
        })
        .collect()
}

fn order_for_rollback(mut v: Vec<AppliedMigration>) -> Vec<AppliedMigration> {
    v.sort_by(|a, b| {
        let rank = |p: Phase| u8::from(p == Phase::Expand);
        rank(a.phase)
            .cmp(&rank(b.phase))
            .then(b.version.cmp(&a.version))
    });
    v
}

/// Refuses a rollback through an irreversible migration or one without a down migration.
pub fn check_reversible(todo: &[AppliedMigration]) -> Result<(), AppDbError> {
    let marked: Vec<String> = todo
        .iter()
        .filter(|a| a.irreversible)
        .map(AppliedMigration::id)
        .collect();
    if !marked.is_empty() {
        return Err(AppDbError::Irreversible {
            ids: marked.join(", "),
            reason: "they are marked `-- cutover:irreversible` (their change cannot be undone by SQL, e.g. dropped data)".into(),
        });
    }
    if let Some(a) = todo.iter().find(|a| a.down.is_none()) {
        return Err(AppDbError::MissingDown {
            id: a.id(),
            expected: format!("{}.down.sql", a.id()),
        });
    }
    Ok(())
}

fn check_drift(s: &Status) -> Result<(), AppDbError> {
    match s.drifted.first() {
        Some(d) => Err(AppDbError::Drift {
            id: format!("{:04}_{}", d.version, d.name),
            path: d.path.clone(),
            recorded: d.recorded.clone(),
            now: d.now.clone(),
        }),
        None => Ok(()),
    }
}

fn status_of(target: String, applied: Vec<AppliedMigration>, available: &[Migration]) -> Status {
    let mut pending = Vec::new();
    let mut drifted = Vec::new();
    for m in available {
        match applied.iter().find(|a| a.version == m.version) {
            None => pending.push(MigrationRef::of(m)),
            Some(a) if a.checksum != m.checksum => drifted.push(Drifted {
                version: m.version,
                name: m.name.clone(),
                path: m.up_path.clone(),
                recorded: a.checksum.clone(),
                now: m.checksum.clone(),
            }),
            Some(_) => {}
        }
    }
    let unknown = applied
        .iter()
        .filter(|a| !available.iter().any(|m| m.version == a.version))
        .map(|a| a.version)
        .collect();
    Status {
        target,
        applied,
        pending,
        drifted,
        unknown,
    }
}

/// A PostgreSQL error of a script, located in it by the error's character position.
fn pg_failure(id: &str, path: &str, script: &str, e: &sqlx::Error) -> AppDbError {
    let (message, pos) = match e {
        sqlx::Error::Database(d) => {
            let pos = d
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|p| match p.position() {
                    Some(sqlx::postgres::PgErrorPosition::Original(n)) => Some(n),
                    _ => None,
                });
            (d.message().to_owned(), pos)
        }
        other => (other.to_string(), None),
    };
    let (line, column) = match pos {
        Some(n) => migrations::line_col_of_char(script, n),
        None => (1, 1),
    };
    AppDbError::MigrationFailed {
        id: id.to_owned(),
        path: path.to_owned(),
        line,
        column,
        message,
    }
}

/// Runs a script statement by statement (so that an error names the statement's line).
async fn run_sqlite_script(
    c: &mut SqliteConnection,
    id: &str,
    path: &str,
    script: &str,
) -> Result<(), AppDbError> {
    run_sqlite_statements(c, id, path, script)
        .await
        .map_err(|(_, e)| e)
}

/// [`run_sqlite_script`], the error with the number of statements that ran before the failing one.
async fn run_sqlite_statements(
    c: &mut SqliteConnection,
    id: &str,
    path: &str,
    script: &str,
) -> Result<(), (usize, AppDbError)> {
    for (i, st) in migrations::split_statements(script, migrations::Dialect::Sqlite)
        .into_iter()
        .enumerate()
    {
        if let Err(e) = sqlx::raw_sql(st.text).execute(&mut *c).await {
            let message = match &e {
                sqlx::Error::Database(d) => d.message().to_owned(),
                other => other.to_string(),
            };
            let at = st.offset + migrations::sqlite_near(st.text, &message).unwrap_or(0);
            let line = migrations::line_of_byte(script, at);
            let line_start = script[..at.min(script.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let column = script[line_start..at.min(script.len())].chars().count() + 1;
            return Err((
                i,
                AppDbError::MigrationFailed {
                    id: id.to_owned(),
                    path: path.to_owned(),
                    line,
                    column,
                    message,
                },
            ));
        }
    }
    Ok(())
}
