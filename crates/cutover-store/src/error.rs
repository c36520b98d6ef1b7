//! The store's error type: user errors (bad URL, unreachable database, newer schema) versus internal ones.

use std::fmt;

/// Everything that can go wrong in the store. Messages never contain a password: every URL kept
/// here is redacted first.
#[derive(thiserror::Error)]
pub enum StoreError {
    /// The database URL or path cannot be understood.
    #[error("bad database URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    /// The database cannot be reached or opened.
    #[error("cannot open the database at `{url}`: {reason}")]
    Unreachable { url: String, reason: String },
    /// The database was written by a newer cutover (its schema has migrations this binary lacks).
    #[error(
        "the database at `{url}` was written by a newer version of cutover (schema version {found}, this cutover knows up to {known})"
    )]
    NewerSchema { url: String, found: i64, known: i64 },
    /// Applying the schema migrations failed.
    #[error("cannot migrate the database at `{url}`")]
    Migrate {
        url: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A record the operation needs does not exist.
    #[error("{what} does not exist")]
    NotFound { what: String },
    /// The change conflicts with what is stored (a duplicate, a stale state, a lock not held).
    #[error("conflict: {what}")]
    Conflict { what: String },
    /// An environment lock is held by someone else and its lease has not expired.
    #[error(
        "environment `{environment}` is locked by {holder} since {acquired_at} (lease until {lease_until}): {message}"
    )]
    LockHeld {
        environment: String,
        holder: String,
        message: String,
        acquired_at: String,
        lease_until: String,
    },
    /// A stored value cannot be read back (corrupt or hand-edited row).
    #[error("stored data is unreadable: {what}")]
    Corrupt { what: String },
    /// The database reported an error.
    #[error("database error while {context}")]
    Database {
        context: String,
        #[source]
        source: sqlx::Error,
    },
}

// Debug shows the same redacted text as Display, so that `{:?}` never leaks more than `{}`.
impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreError({self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        f.write_str(")")
    }
}

impl StoreError {
    /// True for errors caused by the user's input or environment (exit code 2); false for
    /// operational failures and bugs.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            StoreError::BadUrl { .. }
                | StoreError::Unreachable { .. }
                | StoreError::NewerSchema { .. }
                | StoreError::NotFound { .. }
                | StoreError::Conflict { .. }
        )
    }

    /// A suggestion for the user, where one helps.
    pub fn hint(&self) -> Option<String> {
        match self {
            StoreError::BadUrl { .. } => Some(
                "use `postgres://user@host:5432/db`, `sqlite:PATH` or a plain file path (default `.cutover/state.db`)"
                    .into(),
            ),
            StoreError::Unreachable { url, .. } if url.starts_with("postgres") => Some(
                "check that PostgreSQL runs and accepts connections there (`--database URL` or `CUTOVER_DATABASE_URL`)"
                    .into(),
            ),
            StoreError::Unreachable { .. } => {
                Some("check that the directory exists and is writable".into())
            }
            StoreError::NewerSchema { .. } => Some(
                "upgrade cutover to the version that wrote this database; nothing was changed".into(),
            ),
            StoreError::LockHeld { .. } => Some(
                "wait for the other deployment to finish (`--wait`), or retry after its lease expires".into(),
            ),
            _ => None,
        }
    }
}
