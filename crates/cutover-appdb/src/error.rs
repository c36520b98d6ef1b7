//! Why an application-database operation was refused or failed. Messages name the file and line,
//! what was expected, and `hint()` says what to do; none carries the database URL's secret.

use std::path::PathBuf;

/// Everything the application-database operations can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppDbError {
    #[error("{}: {message}", path.display())]
    BadFileName { path: PathBuf, message: String },
    #[error("{}:{line}: {message}", path.display())]
    BadMigration {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "two migrations have version {version}: {} and {}",
        first.display(),
        second.display()
    )]
    DuplicateVersion {
        version: i64,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{}: a down migration without its up migration", path.display())]
    DownWithoutUp { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the application database URL ({reference}) cannot be read: {message}")]
    Url { reference: String, message: String },
    #[error("cannot connect to the application database {target}: {message}")]
    Connect { target: String, message: String },
    #[error("application database {target}: {what}: {message}")]
    Sql {
        target: String,
        what: String,
        message: String,
    },
    #[error(
        "{}:{line}:{column}: migration {id} failed: {message} (nothing of it was applied)",
        path
    )]
    MigrationFailed {
        id: String,
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{}:{line}:{column}: migration {id} failed: {message}. It ran outside a transaction (`-- cutover:no-transaction`), so it may be partially applied: {applied} statement(s) before this one stay applied, and the failing statement may have left something behind (a failed CREATE INDEX CONCURRENTLY leaves an INVALID index); it is recorded as {}",
        path,
        if *.reverting { "still applied" } else { "not applied" }
    )]
    PartiallyApplied {
        id: String,
        path: String,
        line: usize,
        column: usize,
        message: String,
        /// Statements that ran (and committed) before the failing one.
        applied: usize,
        /// A down migration failed (the migration stays recorded as applied); else an up
        /// migration (recorded as not applied).
        reverting: bool,
    },
    #[error(
        "migration {id} was edited after it ran: its checksum was {recorded} when applied, {path} now has {now}"
    )]
    Drift {
        id: String,
        path: String,
        recorded: String,
        now: String,
    },
    #[error(
        "cannot roll back across irreversible migration(s) {ids}: {reason}; nothing was changed"
    )]
    Irreversible { ids: String, reason: String },
    #[error(
        "cannot roll back migration {id}: it has no down migration ({expected} was missing when it ran); nothing was changed"
    )]
    MissingDown { id: String, expected: String },
    #[error("migration {0} is not applied")]
    NotApplied(i64),
    #[error(
        "another migrator holds the lock of the application database {target} (waited {waited_s} s)"
    )]
    LockBusy { target: String, waited_s: u64 },
    #[error("`{program}` failed ({status}): {stderr}")]
    Tool {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("recovery point {}: {message}", path.display())]
    BadRecoveryPoint { path: PathBuf, message: String },
    #[error(
        "recovery point {}: its digest no longer matches: the manifest says {expected}, the file has {actual}; nothing was restored",
        path.display()
    )]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("environment `{0}` has no recovery point")]
    NoRecoveryPoint(String),
    #[error("the restore drill's query failed on the restored copy: {message}")]
    DrillFailed { message: String },
    #[error("the restore drill's query returned no row on the restored copy: {query}")]
    DrillEmpty { query: String },
    #[error("audit log: {0}")]
    Store(#[from] cutover_store::StoreError),
}

impl AppDbError {
    /// Bad input or a refusal (nothing changed) rather than an operational failure.
    #[must_use]
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            AppDbError::BadFileName { .. }
                | AppDbError::BadMigration { .. }
                | AppDbError::DuplicateVersion { .. }
                | AppDbError::DownWithoutUp { .. }
                | AppDbError::Url { .. }
                | AppDbError::Drift { .. }
                | AppDbError::Irreversible { .. }
                | AppDbError::MissingDown { .. }
                | AppDbError::NotApplied(_)
                | AppDbError::DigestMismatch { .. }
                | AppDbError::NoRecoveryPoint(_)
        )
    }

    /// What to do about it.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            AppDbError::BadFileName { .. } => {
                "name migrations `NNNN_name.up.sql`, with an optional `NNNN_name.down.sql`".into()
            }
            AppDbError::BadMigration { .. } => {
                "begin every up migration with `-- cutover:phase expand` or `-- cutover:phase contract`".into()
            }
            AppDbError::DuplicateVersion { .. } => "give each migration its own version number".into(),
            AppDbError::DownWithoutUp { .. } => "rename it to match its up migration, or remove it".into(),
            AppDbError::Url { .. } => {
                "set the variable or file that [database] url references".into()
            }
            AppDbError::Connect { .. } => {
                "check that the database server runs and that the URL's host, port, user and database are right".into()
            }
            AppDbError::MigrationFailed { .. } => {
                "fix the migration and run it again; the database is as it was before it".into()
            }
            AppDbError::PartiallyApplied { .. } => {
                "look at what the statements before the failing one did; make the migration safe to run again (`IF NOT EXISTS`, drop an INVALID index with `DROP INDEX CONCURRENTLY`) or undo them by hand, then run it again".into()
            }
            AppDbError::Drift { .. } => {
                "restore the file as it was applied and add a new migration for the change".into()
            }
            AppDbError::Irreversible { .. } => {
                "`cutover rollback ENV --restore-recovery-point --yes` restores the recovery point taken before that release (data written since is lost)".into()
            }
            AppDbError::MissingDown { .. } => {
                "write the down migration as a new forward migration, or restore a recovery point (`cutover db restore`)".into()
            }
            AppDbError::LockBusy { .. } => "wait for the other migration to finish and try again".into(),
            AppDbError::Tool { program, .. } => {
                format!("check that `{program}` is installed and matches the server's major version")
            }
            AppDbError::DigestMismatch { path, expected, .. } => {
                let tool = match expected.split_once(':') {
                    Some(("sha256", _)) => "sha256sum",
                    _ => "b3sum",
                };
                format!(
                    "the file was changed or damaged after it was taken (`{tool} {}` shows its digest); use another recovery point",
                    path.display()
                )
            }
            AppDbError::NoRecoveryPoint(_) => "take one with `cutover db snapshot ENV`".into(),
            AppDbError::DrillFailed { .. } | AppDbError::DrillEmpty { .. } => {
                "check [database.drill] query, and that the recovery point holds the data it expects".into()
            }
            _ => return None,
        })
    }
}
